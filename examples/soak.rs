//! The soak driver of `bench/soak.sh`: mixed traffic at fixed rates
//! (open loop: a slow answer does not slow the arrivals) against a running
//! sluice for a fixed time, plus a few abusive clients, while sampling the
//! process's RSS once a second.
//!
//! ```text
//! cargo run --release --example soak -- URL ADMIN_URL PID PATHS_FILE SECONDS OUT_DIR
//! ```
//!
//! Classes and rates (per second): pass-through 80, thumbnails 4 (a unique
//! `cb:` each, so nothing is coalesced), zip downloads 0.2 (16 originals)
//! and 0.05 (4 sources x 2 variants). Abusive, per second: one client that
//! disconnects mid-download, one hostile URL (`..`, oversized headers), one
//! silent connection, and every 5 s a stalled upload and a slowloris head.
//!
//! Writes `OUT_DIR/soak-rss.csv` (second, RSS MiB, budget in use MiB,
//! connections open) and `OUT_DIR/soak-summary.txt` (per class: requests,
//! errors, latency percentiles), and prints the summary.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Class {
    latencies: Vec<f64>,
    /// Answers a well-behaved client should not get (5xx, transport errors).
    errors: u64,
    /// Statuses seen, for the summary.
    statuses: BTreeMap<u16, u64>,
}

type Record = Arc<Mutex<BTreeMap<&'static str, Class>>>;

fn record(rec: &Record, class: &'static str, started: Instant, status: Option<u16>, ok: bool) {
    let mut r = rec.lock().unwrap_or_else(|p| p.into_inner());
    let c = r.entry(class).or_default();
    c.latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    *c.statuses.entry(status.unwrap_or(0)).or_default() += 1;
    if !ok {
        c.errors += 1;
    }
}

/// GET (or POST `body`) and read to the end; `expect` says which statuses
/// count as correct for this class.
async fn exchange(
    client: &reqwest::Client,
    url: String,
    body: Option<String>,
    expect: fn(u16) -> bool,
) -> (Option<u16>, bool) {
    let req = match body {
        Some(b) => client.post(url).body(b),
        None => client.get(url),
    };
    match req.send().await {
        Err(_) => (None, false),
        Ok(r) => {
            let status = r.status().as_u16();
            let read = r.bytes().await.is_ok();
            (Some(status), read && expect(status))
        }
    }
}

fn every(per_second: f64) -> tokio::time::Interval {
    let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    i
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn proc_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn gauge(client: &reqwest::Client, admin: &str, name: &str) -> f64 {
    let Ok(r) = client.get(format!("{admin}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: soak URL ADMIN_URL PID PATHS_FILE SECONDS OUT_DIR");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_string();
    let admin = args[2].trim_end_matches('/').to_string();
    let pid: u32 = args[3].parse().expect("PID");
    let paths: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(&args[4])
            .expect("PATHS_FILE")
            .lines()
            .map(str::to_string)
            .collect(),
    );
    let seconds: u64 = args[5].parse().expect("SECONDS");
    let out = std::path::PathBuf::from(&args[6]);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let rec: Record = Arc::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(2048));

    let mut tasks = Vec::new();
    // Well-behaved classes: (name, rate, request maker, correct statuses).
    type Maker = fn(&str, &[String], u64) -> (String, Option<String>);
    type Class = (&'static str, f64, Maker, fn(u16) -> bool);
    let classes: [Class; 4] = [
        (
            "passthrough",
            80.0,
            |b, p, n| (format!("{b}{}", p[n as usize % p.len()]), None),
            |s| s == 200,
        ),
        (
            "thumbnail",
            4.0,
            |b, p, n| {
                let path = &p[n as usize % p.len()];
                (format!("{b}/img/_/rs:fit:300:0/cb:{n}/plain{path}"), None)
            },
            |s| s == 200,
        ),
        (
            "zip",
            0.2,
            |b, p, n| {
                let entries: Vec<String> = (0..16)
                    .map(|i| format!("{{\"source\": \"{}\"}}", p[(n as usize * 16 + i) % p.len()]))
                    .collect();
                (
                    format!("{b}/zip"),
                    Some(format!("{{\"entries\": [{}]}}", entries.join(","))),
                )
            },
            |s| s == 200,
        ),
        (
            "zip_variants",
            0.05,
            |b, p, n| {
                let entries: Vec<String> = (0..4)
                    .map(|i| {
                        let src = &p[(n as usize * 4 + i) % p.len()];
                        format!(
                            "{{\"source\": \"{src}\", \"variants\": [{{\"name\": \"{i}_s.jpg\", \"options\": \"rs:fit:200:200\"}}, {{\"name\": \"{i}_m.jpg\", \"options\": \"rs:fit:800:800\"}}]}}"
                        )
                    })
                    .collect();
                (
                    format!("{b}/zip"),
                    Some(format!("{{\"entries\": [{}]}}", entries.join(","))),
                )
            },
            |s| s == 200,
        ),
    ];
    for (name, rate, make, expect) in classes {
        let (client, rec, base, paths, in_flight) = (
            client.clone(),
            rec.clone(),
            base.clone(),
            paths.clone(),
            in_flight.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = every(rate);
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    record(&rec, name, Instant::now(), None, false);
                    continue;
                };
                let (url, body) = make(&base, &paths, n);
                n += 1;
                let (client, rec) = (client.clone(), rec.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (status, ok) = exchange(&client, url, body, expect).await;
                    record(&rec, name, t, status, ok);
                    drop(permit);
                });
            }
        }));
    }

    // Abusive clients. Their "errors" are wrong answers: a hostile URL
    // must get a 4xx, never a 2xx or 5xx.
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("URL must be http://IP:PORT");
    {
        let (client, rec, base, paths) = (client.clone(), rec.clone(), base.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = every(1.0);
            let mut n = 0usize;
            while Instant::now() < end {
                tick.tick().await;
                n += 1;
                // A client that leaves mid-download.
                let (c, url) = (client.clone(), format!("{base}{}", paths[n % paths.len()]));
                tokio::spawn(async move {
                    if let Ok(mut r) = c.get(url).send().await {
                        let _ = r.chunk().await;
                    }
                });
                // A hostile URL.
                let (c, hostile, url) = (
                    client.clone(),
                    rec.clone(),
                    format!("{base}/%2e%2e/etc/passwd?{n}"),
                );
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (status, _) = exchange(&c, url, None, |_| true).await;
                    let ok = status.is_some_and(|s| (400..500).contains(&s));
                    record(&hostile, "abuse_hostile_url", t, status, ok);
                });
                // A silent connection (closed by --header-timeout).
                tokio::spawn(async move {
                    if let Ok(mut s) = TcpStream::connect(addr).await {
                        let mut b = [0u8; 1];
                        let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await;
                    }
                });
                if n % 5 == 0 {
                    // A stalled upload (cut by --body-timeout / --min-body-rate).
                    let rec = rec.clone();
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let Ok(mut s) = TcpStream::connect(addr).await else {
                            return;
                        };
                        let _ = s
                            // One whole 16-byte chunk (0x10), then nothing more.
                            .write_all(b"POST /zip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"entries\": [   \r\n")
                            .await;
                        let mut got = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(90), s.read_to_end(&mut got)).await;
                        let status = String::from_utf8_lossy(&got)
                            .split_whitespace()
                            .nth(1)
                            .and_then(|c| c.parse().ok());
                        record(&rec, "abuse_stalled_upload", t, status, status == Some(408));
                    });
                    // A slowloris head, a byte a second.
                    tokio::spawn(async move {
                        let Ok(mut s) = TcpStream::connect(addr).await else {
                            return;
                        };
                        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                            if s.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    });
                }
            }
        }));
    }

    // RSS and gauges once a second.
    let mut csv = std::fs::File::create(out.join("soak-rss.csv")).expect("csv");
    let _ = writeln!(csv, "second,rss_mib,budget_in_use_mib,connections_open");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut rss = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let second = started.elapsed().as_secs();
        let r = proc_kib(pid, "VmRSS:") as f64 / 1024.0;
        let budget = gauge(&client, &admin, "sluice_memory_budget_in_use_bytes ").await / 1048576.0;
        let conns = gauge(&client, &admin, "sluice_connections_open ").await;
        rss.push((second, r));
        let _ = writeln!(csv, "{second},{r:.1},{budget:.1},{conns}");
    }
    for t in tasks {
        let _ = t.await;
    }
    // Let the last requests finish.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut summary = String::new();
    summary.push_str(&format!(
        "soak: {seconds} s against {base}; peak RSS (VmHWM) {:.1} MiB\n",
        proc_kib(pid, "VmHWM:") as f64 / 1024.0
    ));
    summary.push_str(
        "class                  requests  errors   p50 ms   p90 ms   p99 ms   max ms  statuses\n",
    );
    let rec = rec.lock().unwrap_or_else(|p| p.into_inner());
    for (name, c) in rec.iter() {
        let mut l = c.latencies.clone();
        l.sort_by(f64::total_cmp);
        summary.push_str(&format!(
            "{name:<22} {:>8} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:?}\n",
            l.len(),
            c.errors,
            percentile(&l, 0.5),
            percentile(&l, 0.9),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(0.0),
            c.statuses
        ));
    }
    let minute_median = |m: u64| {
        let mut v: Vec<f64> = rss
            .iter()
            .filter(|(s, _)| s / 60 == m)
            .map(|(_, r)| *r)
            .collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let minutes = seconds / 60;
    if minutes >= 3 {
        let second = minute_median(1);
        let last = minute_median(minutes - 1);
        summary.push_str(&format!(
            "RSS median, minute 2: {second:.1} MiB; last minute: {last:.1} MiB; change {:+.1} %\n",
            (last - second) / second * 100.0
        ));
    }
    print!("{summary}");
    std::fs::write(out.join("soak-summary.txt"), summary).expect("summary");
}
