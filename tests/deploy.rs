//! Deployment artefacts, checked as part of `cargo test`:
//!
//! - `deploy/check.sh` lints the Dockerfile, renders every kustomize overlay
//!   with `kubectl kustomize`, validates the output offline against the
//!   Kubernetes schemas and checks the promises the manifests make. Its tools
//!   are listed in docs/ci-deploy.txt; a missing tool fails the test loudly.
//! - The same script must reject manifests that break those promises.
//! - Every flag of `sluice --help` appears in README.md's section headed
//!   "Configuration reference", so the docs cannot drift from the clap structs.
//! - `sluice health`, which the image's HEALTHCHECK runs, exits 0 only on a
//!   2xx answer, against a real sluice and against origins that misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
            "deploy/check.sh cannot run: a tool is missing (install what docs/ci-deploy.txt lists)\n{}",
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
    ] {
        assert!(
            stdout.contains(&format!("== kubectl kustomize {target}\n")),
            "{target} was not rendered\n{stdout}"
        );
    }
    assert!(
        stdout.contains("invariants: 5 renderings, 0 problems"),
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
    // Three promises broken at once; the invariants step reports each.
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
        "FAIL overlays/shield/sluice: memory limit 1344Mi < budget 2048 MiB",
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

/// The text of README.md's section headed "Configuration reference", up to
/// the next heading of the same or a higher level.
fn configuration_reference(readme: &str) -> Option<String> {
    let mut level = None;
    let mut section = String::new();
    for line in readme.lines() {
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
fn readme_configuration_reference_lists_every_flag() {
    let flags = help_flags();
    assert!(
        flags.iter().any(|f| f == "--memory-budget"),
        "could not read the flags from --help: {flags:?}"
    );
    let readme_path = repo().join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", readme_path.display()));
    let section = configuration_reference(&readme)
        .expect("README.md has no section headed \"Configuration reference\"");
    let missing: Vec<&String> = flags.iter().filter(|f| !names_flag(&section, f)).collect();
    assert!(
        missing.is_empty(),
        "README.md's Configuration reference does not mention {missing:?} (every flag of `sluice --help` must appear there)"
    );
}

#[test]
fn flag_lookup_is_by_whole_name() {
    assert!(names_flag("| `--listen` | x |", "--listen"));
    assert!(!names_flag("| `--admin-listen` |", "--listen"));
    assert!(!names_flag("--listen-backlog", "--listen"));
    let readme = "# sluice\n## Configuration reference\n`--listen`\n### Env\n`--origin`\n## Deploy\n`--memory-budget`\n";
    let section = configuration_reference(readme).expect("section");
    assert!(names_flag(&section, "--listen") && names_flag(&section, "--origin"));
    assert!(!names_flag(&section, "--memory-budget"));
    assert!(configuration_reference("# sluice\n## Usage\n").is_none());
}

/// A sluice serving an empty directory on ephemeral loopback ports; killed on drop.
struct Sluice {
    child: Child,
    client: String,
}

impl Sluice {
    fn start() -> Sluice {
        let dir = std::env::temp_dir().join(format!("sluice-deploy-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .arg("--origin")
            .arg(&dir)
            .env_remove("SLUICE_LISTEN")
            .env_remove("SLUICE_ADMIN_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sluice");
        // The "listening" log line names the bound address.
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let client = loop {
            let line = lines
                .next()
                .expect("sluice exited before listening")
                .expect("read log");
            if line.contains("\"listening\"") {
                let v = line.split("\"addr\":\"").nth(1).expect("addr field");
                break v.split('"').next().expect("addr value").to_string();
            }
        };
        // Keep draining the log so sluice never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Sluice { child, client }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health(url: &str, timeout: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["health", "--url", url, "--timeout", timeout])
        .output()
        .expect("run sluice health");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// A one-shot HTTP server that reads a request and answers `response`
/// (or, if `None`, says nothing and holds the connection open).
fn canned_server(response: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = s.write_all(r.as_bytes());
                }
                None => std::thread::sleep(Duration::from_secs(10)),
            }
        }
    });
    addr
}

#[test]
fn health_exits_zero_when_sluice_is_ready() {
    let sluice = Sluice::start();
    let (code, stderr, _) = health(&format!("http://{}/readyz", sluice.client), "2s");
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let (code, stderr, _) = health(&format!("http://{}/healthz", sluice.client), "2s");
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

#[test]
fn health_exits_one_on_a_non_2xx_answer() {
    let sluice = Sluice::start();
    // The dir origin has no such file: 404 from a live sluice.
    let (code, stderr, _) = health(&format!("http://{}/no-such-image.jpg", sluice.client), "2s");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("404"), "stderr: {stderr}");

    let addr = canned_server(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\ndraining\n",
    ));
    let (code, stderr, _) = health(&format!("http://{addr}/readyz"), "2s");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("503"), "stderr: {stderr}");
}

#[test]
fn health_exits_one_when_nothing_answers() {
    // Refused: a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (code, stderr, _) = health(&format!("http://127.0.0.1:{port}/readyz"), "2s");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot connect"), "stderr: {stderr}");

    // Silent: accepts, never answers. Must give up after the timeout, not hang.
    let addr = canned_server(None);
    let (code, stderr, took) = health(&format!("http://{addr}/readyz"), "500ms");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no answer within"), "stderr: {stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Not something the probe can ask.
    let (code, stderr, _) = health("https://127.0.0.1:8443/readyz", "1s");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("only http://"), "stderr: {stderr}");
}
