//! Deployment artefacts, checked as part of `cargo test`:
//!
//! - `deploy/check.sh` lints the Dockerfile, renders every kustomize overlay
//!   with `kubectl kustomize`, validates the output offline against the
//!   Kubernetes schemas and checks the promises the manifests make. Its tools
//!   are listed in docs/deploy.md ("Checking the manifests"); a missing tool
//!   fails the test loudly.
//! - The same script must reject manifests that break those promises.
//! - Every flag of `sluice --help` appears in docs/configuration.md's section
//!   headed "Configuration reference", so the docs cannot drift from the clap
//!   structs.
//! - `sluice health`, which the image's HEALTHCHECK runs, exits 0 only on a
//!   2xx answer, against a real sluice and against origins that misbehave.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Sluice, TestOrigin};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run_check(deploy_dir: &Path) -> Output {
    Command::new("bash")
        .arg(deploy_dir.join("check.sh"))
        .output()
        .expect("cannot run bash")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fail_if_tools_missing(out: &Output) {
    if out.status.code() == Some(3) {
        panic!(
            "deploy/check.sh cannot run: a tool is missing (install what docs/deploy.md lists under \"Checking the manifests\")\n{}",
            describe(out)
        );
    }
}

#[test]
fn manifests_render_and_validate_offline() {
    let out = run_check(&repo().join("deploy"));
    fail_if_tools_missing(&out);
    assert!(
        out.status.success(),
        "deploy/check.sh failed\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for target in [
        "base",
        "overlays/standalone",
        "overlays/sidecar",
        "overlays/shield",
        "standalone+servicemonitor",
        "standalone+tls",
    ] {
        assert!(
            stdout.contains(&format!("== kubectl kustomize {target}\n")),
            "{target} was not rendered\n{stdout}"
        );
    }
    assert!(
        stdout.contains("invariants: 6 renderings, 0 problems"),
        "{stdout}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn check_rejects_manifests_that_break_their_promises() {
    let scratch = std::env::temp_dir().join(format!("sluice-deploy-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let deploy = scratch.join("deploy");
    copy_dir(&repo().join("deploy"), &deploy);
    // Promises broken at once; the invariants step reports each.
    edit(
        &deploy.join("k8s/base/deployment.yaml"),
        "terminationGracePeriodSeconds: 45",
        "terminationGracePeriodSeconds: 20",
    );
    edit(
        &deploy.join("k8s/base/service.yaml"),
        "targetPort: http",
        "targetPort: admin",
    );
    edit(
        &deploy.join("k8s/overlays/shield/deployment-patch.yaml"),
        "value: \"1GiB\"",
        "value: \"2GiB\"",
    );
    // TLS: the probe left on plain HTTP, the pair on a writable mount.
    edit(
        &deploy.join("k8s/components/tls/deployment-patch.yaml"),
        "              scheme: HTTPS\n",
        "",
    );
    edit(
        &deploy.join("k8s/components/tls/deployment-patch.yaml"),
        "              readOnly: true\n",
        "",
    );
    let out = run_check(&deploy);
    let _ = std::fs::remove_dir_all(&scratch);
    fail_if_tools_missing(&out);
    assert!(
        !out.status.success(),
        "broken manifests passed\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "FAIL base/sluice: terminationGracePeriodSeconds 20 <= preStop + shutdown grace = 35",
        "FAIL base/service/sluice: exposes ['admin'], not only sluice's client port",
        "FAIL overlays/shield/sluice: memory limit 1280Mi < budget 2048 MiB",
        "FAIL standalone+tls/sluice: the readiness probe must use HTTPS on a TLS client port",
        "FAIL standalone+tls/sluice: SLUICE_TLS_KEY='/etc/sluice/tls/tls.key' is not in a read-only Secret volume",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?}\n{}",
            describe(&out)
        );
    }
}

/// Every `--flag` that `sluice --help` shows, except clap's own.
fn help_flags() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--help")
        .output()
        .expect("run sluice --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let mut flags = Vec::new();
    for line in help.lines() {
        // Option lines look like "      --listen <LISTEN>" or "  -h, --help".
        let t = line.trim_start();
        let t = t.split_once(", ").map(|(_, rest)| rest).unwrap_or(t);
        if let Some(rest) = t.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() && name != "help" && name != "version" {
                flags.push(format!("--{name}"));
            }
        }
    }
    flags
}

/// Where the configuration reference lives.
const CONFIGURATION_DOC: &str = "docs/configuration.md";

/// The text of the section headed "Configuration reference" in a markdown
/// document, up to the next heading of the same or a higher level.
fn configuration_reference(doc: &str) -> Option<String> {
    let mut level = None;
    let mut section = String::new();
    for line in doc.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        let is_heading = hashes > 0 && line[hashes..].starts_with(' ');
        match level {
            None if is_heading
                && line[hashes..]
                    .trim()
                    .eq_ignore_ascii_case("Configuration reference") =>
            {
                level = Some(hashes)
            }
            Some(l) if is_heading && hashes <= l => break,
            Some(_) => {
                section.push_str(line);
                section.push('\n');
            }
            None => {}
        }
    }
    level.map(|_| section)
}

/// Does `text` name `flag` as a whole word (so `--listen` is not found
/// inside `--admin-listen`)?
fn names_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn configuration_reference_lists_every_flag() {
    let flags = help_flags();
    assert!(
        flags.iter().any(|f| f == "--memory-budget"),
        "could not read the flags from --help: {flags:?}"
    );
    let doc_path = repo().join(CONFIGURATION_DOC);
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()));
    let section = configuration_reference(&doc).unwrap_or_else(|| {
        panic!("{CONFIGURATION_DOC} has no section headed \"Configuration reference\"")
    });
    let missing: Vec<&String> = flags.iter().filter(|f| !names_flag(&section, f)).collect();
    assert!(
        missing.is_empty(),
        "{CONFIGURATION_DOC}'s Configuration reference does not mention {missing:?} (every flag of `sluice --help` must appear there)"
    );
}

#[test]
fn flag_lookup_is_by_whole_name() {
    assert!(names_flag("| `--listen` | x |", "--listen"));
    assert!(!names_flag("| `--admin-listen` |", "--listen"));
    assert!(!names_flag("--listen-backlog", "--listen"));
    let doc = "# Configuration\n## Configuration reference\n`--listen`\n### Env\n`--origin`\n## Subcommands\n`--memory-budget`\n";
    let section = configuration_reference(doc).expect("section");
    assert!(names_flag(&section, "--listen") && names_flag(&section, "--origin"));
    assert!(!names_flag(&section, "--memory-budget"));
    assert!(configuration_reference("# sluice\n## Usage\n").is_none());
}

async fn health(url: String, timeout: &'static str) -> (Option<i32>, String, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["health", "--url", &url, "--timeout", timeout])
            .output()
            .expect("run sluice health");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_zero_when_sluice_is_ready() {
    let samples = repo().join("samples");
    let sluice = Sluice::start(&["--origin", samples.to_str().expect("utf-8 path")]);
    for url in [
        sluice.url("/readyz"),
        sluice.url("/healthz"),
        sluice.admin_url("/readyz"),
    ] {
        let (code, stderr, _) = health(url.clone(), "2s").await;
        assert_eq!(code, Some(0), "{url}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_one_on_a_non_2xx_answer() {
    let origin = TestOrigin::start().await;
    let mut sluice = Sluice::start(&["--origin", &origin.url(), "--shutdown-grace", "10s"]);

    // A 503 passed through from the origin.
    let (code, stderr, _) = health(sluice.url("/status/503"), "2s").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("503"), "stderr: {stderr}");

    // A draining sluice: keep one response in flight, send SIGTERM (what the
    // kubelet does after preStop), and the admin listener's /readyz, which
    // outlives the client drain, must fail the probe.
    let client = common::client();
    let mut stalled = client
        .get(sluice.url("/stall-body/1000"))
        .send()
        .await
        .expect("in-flight request");
    let _ = stalled.chunk().await;
    let (code, _, _) = health(sluice.admin_url("/readyz"), "2s").await;
    assert_eq!(code, Some(0), "ready before SIGTERM");
    sluice.sigterm();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = (None, String::new(), Duration::ZERO);
    while Instant::now() < deadline {
        last = health(sluice.admin_url("/readyz"), "1s").await;
        if last.0 == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, Some(1), "still healthy while draining: {}", last.1);
    assert!(last.1.contains("503"), "stderr: {}", last.1);
    drop(stalled);
    assert!(
        sluice.wait_exit(Duration::from_secs(15)).is_some(),
        "sluice did not exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_one_when_nothing_answers() {
    // Refused: a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (code, stderr, _) = health(format!("http://127.0.0.1:{port}/readyz"), "2s").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot connect"), "stderr: {stderr}");

    // Silent: accepts, never answers. Must give up after the timeout, not hang.
    let origin = TestOrigin::start().await;
    let (code, stderr, took) = health(format!("{}/stall-headers", origin.url()), "500ms").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no answer within"), "stderr: {stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Not something the probe can ask.
    let (code, stderr, _) = health("https://127.0.0.1:8443/readyz".into(), "1s").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("only http://"), "stderr: {stderr}");
}
