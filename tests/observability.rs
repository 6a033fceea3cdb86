//! Observability against the real binary: `/metrics` read by the official
//! Python Prometheus client's parsers (classic text and OpenMetrics) with
//! counters that move with real traffic, the access rules of the debug
//! endpoints, and a heap profile fetched over HTTP that `go tool pprof`
//! reads with symbols.
//!
//! Needs Python's `prometheus_client` (Debian: python3-prometheus-client)
//! and Go (Debian: golang-go); see docs/development.md. Missing tools fail the
//! tests with a message saying what to install.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{client, Sluice, TestOrigin};
use futures_util::StreamExt;

const TOKEN: &str = "test-token-0123456789abcdef";

// ------------------------------------------------------------ parsing

#[derive(Debug, Clone)]
struct Sample {
    family: String,
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A Python interpreter that can import `prometheus_client`.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates = std::env::var("SLUICE_TEST_PYTHON")
            .into_iter()
            .chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
        for python in candidates {
            let ok = Command::new(&python)
                .args(["-c", "import prometheus_client.openmetrics.parser"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return python;
            }
        }
        panic!(
            "no Python with prometheus_client: install python3-prometheus-client (apt) \
             or `pip install prometheus-client`, or set SLUICE_TEST_PYTHON"
        )
    })
}

/// Parse exposition text with prometheus_client's parser for `format`
/// ("prometheus" or "openmetrics"); panics with the parser's error.
fn parse(text: &str, format: &str) -> Vec<Sample> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/parse_metrics.py"
    );
    let mut child = Command::new(python())
        .args([script, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the metrics parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{format} parser rejected /metrics: {}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 5, "parser output line {line:?}");
            Sample {
                family: f[0].to_string(),
                kind: f[1].to_string(),
                name: f[2].to_string(),
                labels: f[3]
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: f[4].parse().expect("sample value"),
            }
        })
        .collect()
}

struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the one sample `name` whose labels include `labels`;
    /// 0 when there is none yet (a labelled counter not yet touched).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    fn kind_of(&self, family: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|s| s.family == family)
            .map(|s| s.kind.as_str())
    }
}

async fn scrape_as(sluice: &Sluice, openmetrics: bool) -> (Scrape, String) {
    let mut req = client().get(sluice.admin_url("/metrics"));
    if openmetrics {
        req = req.header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        );
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    let format = if openmetrics {
        "openmetrics"
    } else {
        "prometheus"
    };
    (
        Scrape {
            samples: parse(&text, format),
        },
        content_type,
    )
}

async fn scrape(sluice: &Sluice) -> Scrape {
    scrape_as(sluice, false).await.0
}

/// Scrape until `done` holds (counters are recorded when a response body
/// ends on the server, a moment after the client has read it).
async fn scrape_until(sluice: &Sluice, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(sluice).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "metrics never showed {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------ /metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_counters_follow_traffic() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let sluice = Sluice::start(&["--origin", &url, "--memory-budget", "64MiB"]);

    let before = scrape(&sluice).await;
    // Families that exist before any traffic, with their types.
    for (family, kind) in [
        ("sluice_http_requests_in_flight", "gauge"),
        ("sluice_upstream_header_duration_seconds", "histogram"),
        ("sluice_upstream_duration_seconds", "histogram"),
        ("sluice_upstream_received_bytes", "counter"),
        ("sluice_upstream_streams_in_flight", "gauge"),
        ("sluice_zip_archives_in_flight", "gauge"),
        ("sluice_zip_archive_duration_seconds", "histogram"),
        ("sluice_zip_entry_bytes", "counter"),
        ("sluice_processing_queue_length", "gauge"),
        ("sluice_processing_in_progress", "gauge"),
        ("sluice_processing_queue_wait_seconds", "histogram"),
        ("sluice_processing_duration_seconds", "histogram"),
        ("sluice_memory_budget_in_use_bytes", "gauge"),
        ("sluice_memory_budget_capacity_bytes", "gauge"),
        ("sluice_memory_budget_waiters", "gauge"),
        ("sluice_allocator_allocated_bytes", "gauge"),
        ("sluice_allocator_resident_bytes", "gauge"),
        ("sluice_process_resident_memory_bytes", "gauge"),
        ("sluice_heap_profiling_active", "gauge"),
    ] {
        assert_eq!(before.kind_of(family), Some(kind), "family {family}");
    }
    assert_eq!(
        before.get("sluice_memory_budget_capacity_bytes", &[]),
        (64u64 << 20) as f64
    );
    assert!(before.get("sluice_allocator_allocated_bytes", &[]) > 0.0);
    let rss = before.get("sluice_process_resident_memory_bytes", &[]);
    let real_rss = sluice.rss() as f64;
    assert!(
        rss > real_rss / 2.0 && rss < real_rss * 2.0,
        "reported RSS {rss} vs /proc {real_rss}"
    );
    for s in &before.samples {
        assert!(s.name.starts_with("sluice_"), "unprefixed metric {s:?}");
    }

    // Traffic: three 100 kB bodies, one origin 503 passed through.
    const N: u64 = 100_000;
    for _ in 0..3 {
        let body = client()
            .get(sluice.url(&format!("/bytes/{N}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len() as u64, N);
    }
    let resp = client()
        .get(sluice.url("/status/503"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    resp.bytes().await.unwrap();

    let ok = [("route", "passthrough"), ("status", "200")];
    let unavailable = [("route", "passthrough"), ("status", "503")];
    let after = scrape_until(&sluice, "4 pass-through requests", |s| {
        s.get("sluice_http_requests_total", &ok)
            == before.get("sluice_http_requests_total", &ok) + 3.0
            && s.get("sluice_http_requests_total", &unavailable) == 1.0
    })
    .await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let passthrough = [("route", "passthrough")];
    assert_eq!(
        delta("sluice_http_request_duration_seconds_count", &passthrough),
        4.0
    );
    assert!(delta("sluice_http_response_sent_bytes_total", &passthrough) >= (3 * N) as f64);
    assert_eq!(
        delta("sluice_upstream_responses_total", &[("status", "200")]),
        3.0
    );
    assert_eq!(
        delta("sluice_upstream_responses_total", &[("status", "503")]),
        1.0
    );
    assert!(delta("sluice_upstream_received_bytes_total", &[]) >= (3 * N) as f64);
    assert_eq!(
        delta("sluice_upstream_header_duration_seconds_count", &[]),
        4.0
    );
    assert_eq!(delta("sluice_upstream_duration_seconds_count", &[]), 4.0);
    assert_eq!(after.get("sluice_upstream_streams_in_flight", &[]), 0.0);
    // The scrape before this one was counted too.
    assert!(
        after.get(
            "sluice_http_requests_total",
            &[("route", "metrics"), ("status", "200")]
        ) >= 1.0
    );

    // The OpenMetrics format, as Prometheus asks for it, parses with the
    // stricter OpenMetrics parser and carries the same counters.
    let (open, content_type) = scrape_as(&sluice, true).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert_eq!(open.kind_of("sluice_http_requests"), Some("counter"));
    assert_eq!(
        open.get("sluice_http_requests_total", &ok),
        after.get("sluice_http_requests_total", &ok)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_gauges_count_open_streams() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let sluice = Sluice::start(&["--origin", &url]);
    // Two bodies that trickle for seconds; read only their first chunk.
    let mut open = Vec::new();
    for _ in 0..2 {
        let resp = client()
            .get(sluice.url("/slow/10000000?delay_ms=100&chunk=16384"))
            .send()
            .await
            .unwrap();
        let mut stream = resp.bytes_stream();
        stream.next().await.unwrap().unwrap();
        open.push(stream);
    }
    let s = scrape_until(&sluice, "2 upstream streams in flight", |s| {
        s.get("sluice_upstream_streams_in_flight", &[]) == 2.0
    })
    .await;
    // Both client requests plus this scrape.
    assert!(s.get("sluice_http_requests_in_flight", &[]) >= 3.0);
    drop(open);
    scrape_until(&sluice, "streams released after the clients left", |s| {
        s.get("sluice_upstream_streams_in_flight", &[]) == 0.0
            && s.get(
                "sluice_http_responses_incomplete_total",
                &[("route", "passthrough"), ("outcome", "client_gone")],
            ) == 2.0
    })
    .await;
}

// ------------------------------------------------------------ debug endpoints

async fn call(sluice: &Sluice, method: &str, path: &str, auth: Option<&str>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, sluice.admin_url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_do_not_exist_without_a_token() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let sluice = Sluice::start(&["--origin", &url]);
    let bearer = format!("Bearer {TOKEN}");
    for (method, path) in [
        ("GET", "/debug/pprof/heap"),
        ("POST", "/debug/pprof/heap/activate"),
        ("POST", "/debug/pprof/heap/deactivate"),
    ] {
        for auth in [None, Some(bearer.as_str())] {
            let resp = call(&sluice, method, path, auth).await;
            assert_eq!(resp.status(), 404, "{method} {path} auth={auth:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_need_the_exact_bearer_token() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    // The token comes from the environment here, as in a Kubernetes secret.
    let sluice = Sluice::start_with_env(&["--origin", &url], &[("SLUICE_DEBUG_TOKEN", TOKEN)]);
    let good = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    let refused: [(&str, &str, Option<&str>); 7] = [
        ("GET", "/debug/pprof/heap", None),
        (
            "GET",
            "/debug/pprof/heap",
            Some("Bearer wrong-token-wrong-token"),
        ),
        ("GET", "/debug/pprof/heap", Some(basic.as_str())),
        ("POST", "/debug/pprof/heap/activate", Some(prefix.as_str())),
        ("POST", "/debug/pprof/heap/activate", Some(longer.as_str())),
        ("POST", "/debug/pprof/heap/activate", Some("Bearer ")),
        // Unknown paths are refused before they are looked up.
        ("GET", "/debug/pprof/goroutine", None),
    ];
    for (method, path, auth) in refused {
        let resp = call(&sluice, method, path, auth).await;
        assert_eq!(resp.status(), 401, "{method} {path} auth={auth:?}");
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }

    let accepted: [(&str, &str, &str, u16); 7] = [
        ("GET", "/debug/pprof/heap", good.as_str(), 409), // not active yet
        ("GET", "/debug/pprof/heap/activate", good.as_str(), 405),
        ("GET", "/debug/pprof/goroutine", good.as_str(), 404),
        ("POST", "/debug/pprof/heap/activate", lower.as_str(), 200),
        ("GET", "/debug/pprof/heap", good.as_str(), 200),
        ("POST", "/debug/pprof/heap/deactivate", good.as_str(), 200),
        ("GET", "/debug/pprof/heap", good.as_str(), 409),
    ];
    for (method, path, auth, status) in accepted {
        let resp = call(&sluice, method, path, Some(auth)).await;
        assert_eq!(resp.status(), status, "{method} {path}");
        if status == 405 {
            assert_eq!(resp.headers()["allow"], "POST");
        }
    }

    // Every refusal is logged and counted, and the token is never logged.
    let logs = sluice.logs();
    let logged = logs
        .iter()
        .filter(|l| l.contains("debug endpoint refused"))
        .count();
    assert_eq!(logged, refused.len(), "refusal log lines: {logs:#?}");
    assert!(
        logs.iter().all(|l| !l.contains(TOKEN)),
        "the token leaked into the log"
    );
    let s = scrape(&sluice).await;
    assert_eq!(
        s.get("sluice_debug_auth_failures_total", &[]),
        refused.len() as f64
    );
    // The debug endpoints live on the admin listener only.
    let resp = client()
        .get(sluice.url("/debug/pprof/heap"))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);
}

#[test]
fn a_short_debug_token_is_refused_at_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--debug-token", "secret", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

// ------------------------------------------------------------ heap profile

fn go() -> &'static str {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`go` is not installed: `apt-get install golang-go` (CI installs it) to read heap profiles with go tool pprof"
    );
    "go"
}

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("sluice-obs-{}-{nanos}-{name}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heap_profile_from_a_running_server_reads_in_go_tool_pprof() {
    let go = go();
    let origin = TestOrigin::start().await;
    let url = origin.url();
    // Sample every 4 KiB instead of 512 KiB so that a short test run
    // certainly has samples; MALLOC_CONF adds to the built-in prof:true.
    let sluice = Sluice::start_with_env(
        &["--origin", &url, "--debug-token", TOKEN],
        &[("MALLOC_CONF", "lg_prof_sample:12")],
    );
    let auth = format!("Bearer {TOKEN}");
    let resp = call(
        &sluice,
        "POST",
        "/debug/pprof/heap/activate",
        Some(auth.as_str()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        scrape(&sluice)
            .await
            .get("sluice_heap_profiling_active", &[]),
        1.0
    );

    // Load while active: some finished bodies, and four held open so that
    // their buffers are live when the profile is taken.
    for _ in 0..8 {
        client()
            .get(sluice.url("/bytes/1000000"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let mut open = Vec::new();
    for _ in 0..4 {
        let resp = client()
            .get(sluice.url("/slow/10000000?delay_ms=50&chunk=65536"))
            .send()
            .await
            .unwrap();
        let mut stream = resp.bytes_stream();
        stream.next().await.unwrap().unwrap();
        open.push(stream);
    }

    let resp = call(&sluice, "GET", "/debug/pprof/heap", Some(auth.as_str())).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let profile = resp.bytes().await.unwrap();
    assert_eq!(&profile[..2], &[0x1f, 0x8b], "a gzipped protobuf");
    drop(open);
    let path = temp_path("heap.pb.gz");
    std::fs::write(&path, &profile).unwrap();

    // As docs/profiling.md does it: the binary, then the profile.
    let out = Command::new(go)
        .args(["tool", "pprof", "-top"])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "go tool pprof failed: {stderr}");
    assert!(stdout.contains("Type: inuse_space"), "{stdout}");
    // The first row after the header is the biggest allocation site: a
    // symbolized Rust function, not jemalloc's sampler (cut by drop_frames)
    // and not an unsymbolized address.
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .collect();
    let top = rows
        .first()
        .unwrap_or_else(|| panic!("no samples: {stdout}"));
    assert!(top.contains("::"), "top row is not a Rust symbol: {stdout}");
    assert!(
        !stdout.contains("prof_backtrace") && !stdout.contains("[sluice]"),
        "allocator frames or unsymbolized frames left: {stdout}"
    );
    // Sluice's own code appears in the stacks (cumulative).
    assert!(stdout.contains("sluice::"), "no sluice frames: {stdout}");

    // Without the binary (an operator's laptop), the profile's own symbols do.
    let out = Command::new(go)
        .args(["tool", "pprof", "-top"])
        .arg(&path)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sluice::"));
    let _ = std::fs::remove_file(&path);

    let resp = call(
        &sluice,
        "POST",
        "/debug/pprof/heap/deactivate",
        Some(auth.as_str()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        scrape(&sluice)
            .await
            .get("sluice_heap_profiling_active", &[]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_and_processing_metrics_follow_their_routes() {
    // The bundled samples are the origin: real photos for both routes.
    let sluice = Sluice::start(&[]);
    let manifest = r#"{"name": "m.zip", "entries": [
        {"source": "rocket.jpg"}, {"source": "sunset.jpg"}, {"source": "missing.jpg"}]}"#;
    let r = client()
        .post(sluice.url("/zip"))
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let zip_len = r.bytes().await.unwrap().len();
    assert!(zip_len > 100_000);
    let rocket = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/rocket.jpg"))
        .unwrap()
        .len();
    let sunset = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/sunset.jpg"))
        .unwrap()
        .len();
    let s = scrape_until(&sluice, "a finished archive", |s| {
        s.get("sluice_zip_archives_total", &[("outcome", "complete")]) == 1.0
    })
    .await;
    assert_eq!(
        s.get("sluice_zip_entries_total", &[("outcome", "written")]),
        2.0
    );
    assert_eq!(
        s.get("sluice_zip_entries_total", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(
        s.get("sluice_zip_entry_bytes_total", &[]),
        (rocket + sunset) as f64
    );
    assert_eq!(s.get("sluice_zip_archives_in_flight", &[]), 0.0);

    let r = client()
        .get(sluice.url("/img/insecure/rs:fit:200:200/plain/rocket.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let s = scrape_until(&sluice, "a processed image", |s| {
        s.get("sluice_processing_jobs_total", &[("outcome", "ok")]) == 1.0
    })
    .await;
    assert_eq!(s.get("sluice_processing_duration_seconds_count", &[]), 1.0);
    assert_eq!(s.get("sluice_processing_queue_length", &[]), 0.0);
}
