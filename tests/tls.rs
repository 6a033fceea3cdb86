//! TLS on the client listener (issue 19), judged by curl (OpenSSL): h2 and
//! http/1.1 over ALPN, a clear answer to plain HTTP on the TLS port, the
//! handshake deadline, and certificate reloads (changed files and SIGHUP)
//! under load without a failed request, a mismatched pair refused with the
//! old one kept. Certificates come from a test CA made with openssl.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{make_test_pki, metric, Sluice};

fn samples() -> String {
    format!("{}/samples", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Start sluice on TLS with copies of `cert` and `key` in `dir` (so the
/// test can replace them), and more flags.
fn start_tls(dir: &Path, cert: &Path, key: &Path, more: &[&str]) -> Sluice {
    std::fs::copy(cert, dir.join("tls.crt")).unwrap();
    std::fs::copy(key, dir.join("tls.key")).unwrap();
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let mut args = vec![
        "--origin".to_string(),
        samples(),
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sluice::start(&args)
}

/// Replace `dir`'s pair as a rotation does: new files renamed into place.
fn rotate(dir: &Path, cert: &Path, key: &Path) {
    std::fs::copy(cert, dir.join("tls.crt.new")).unwrap();
    std::fs::copy(key, dir.join("tls.key.new")).unwrap();
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt")).unwrap();
}

/// curl over TLS trusting `ca`: (HTTP version, status, body bytes), or
/// curl's exit code when the transfer failed.
fn curl(sluice: &Sluice, ca: &Path, http: &str, path: &str) -> Result<(String, u16, u64), i32> {
    let out = Command::new("curl")
        .args(["-sS", http, "--cacert"])
        .arg(ca)
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code} %{size_download}",
        ])
        .arg(format!("https://127.0.0.1:{}{path}", sluice.addr.port()))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split(' ');
    Ok((
        it.next().unwrap().to_string(),
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_and_http1_are_served_over_tls() {
    let dir = scratch("alpn");
    let (ca, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(&dir, &cert, &key, &[]);
    let size = std::fs::metadata(format!("{}/sunset.jpg", samples()))
        .unwrap()
        .len();
    assert_eq!(
        curl(&sluice, &ca, "--http2", "/sunset.jpg"),
        Ok(("2".to_string(), 200, size))
    );
    assert_eq!(
        curl(&sluice, &ca, "--http1.1", "/sunset.jpg"),
        Ok(("1.1".to_string(), 200, size))
    );
    // Ranges and thumbnails work over TLS too (bodies stream, not spliced).
    assert_eq!(
        curl(
            &sluice,
            &ca,
            "--http2",
            "/img/_/rs:fit:100:0/plain/sunset.jpg@webp"
        )
        .map(|r| r.1),
        Ok(200)
    );
    // A client that does not trust the CA fails the handshake.
    let other = make_test_pki(&dir.join("other")).0;
    assert!(curl(&sluice, &other, "--http2", "/sunset.jpg").is_err());
    assert!(metric(&sluice, "sluice_tls_handshake_failures_total", "protocol").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_gets_a_clear_400_and_a_close() {
    let dir = scratch("plain");
    let (_, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(&dir, &cert, &key, &[]);
    let (answer, closed) = common::raw_exchange(
        sluice.addr,
        b"GET /sunset.jpg HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(
        text.ends_with("this port speaks HTTPS; use https://\n"),
        "{text}"
    );
    assert!(closed, "the connection is closed after the answer");
    assert_eq!(
        metric(&sluice, "sluice_tls_handshake_failures_total", "plain_http").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_at_the_handshake_deadline() {
    let dir = scratch("silent");
    let (_, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(&dir, &cert, &key, &["--tls-handshake-timeout", "500ms"]);
    let started = std::time::Instant::now();
    let (answer, closed) = common::raw_exchange(sluice.addr, b"", Duration::from_secs(5)).await;
    assert!(answer.is_empty());
    assert!(closed, "closed by sluice");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        metric(&sluice, "sluice_tls_handshake_failures_total", "timeout").await,
        1.0
    );
}

/// Requests keep going while the pair is rotated (files renamed into
/// place); none fails, the new certificate is served after
/// each reload, and a pair whose key does not match is refused while the
/// one in use stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_under_load_and_a_bad_pair_is_refused() {
    let dir = scratch("reload");
    let (ca1, cert1, key1) = make_test_pki(&dir.join("one"));
    let (ca2, cert2, key2) = make_test_pki(&dir.join("two"));
    let both = dir.join("both.pem");
    let mut bundle = std::fs::read(&ca1).unwrap();
    bundle.extend(std::fs::read(&ca2).unwrap());
    std::fs::write(&both, bundle).unwrap();
    let sluice = Arc::new(start_tls(
        &dir,
        &cert1,
        &key1,
        &["--tls-reload-interval", "200ms"],
    ));
    assert!(curl(&sluice, &ca1, "--http2", "/healthz").is_ok());
    assert!(curl(&sluice, &ca2, "--http2", "/healthz").is_err());

    // Load: clients that trust both CAs, over h2 and http/1.1.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for k in 0..4 {
        let (sluice, both, stop, done) = (sluice.clone(), both.clone(), stop.clone(), done.clone());
        load.push(std::thread::spawn(move || {
            let http = if k % 2 == 0 { "--http2" } else { "--http1.1" };
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match curl(&sluice, &both, http, "/sunset.jpg") {
                    Ok((_, 200, _)) => {}
                    other => failures.push(other),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    let reloads = |outcome: &'static str| {
        let sluice = sluice.clone();
        async move { metric(&sluice, "sluice_tls_certificate_reloads_total", outcome).await }
    };

    // 1. Files replaced: picked up by the poll.
    rotate(&dir, &cert2, &key2);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            reloads("loaded").await >= 1.0
        })
        .await
    );
    assert!(curl(&sluice, &ca2, "--http2", "/healthz").is_ok());
    assert!(curl(&sluice, &ca1, "--http2", "/healthz").is_err());

    // 2. A certificate with the other pair's key: refused, the second
    // pair stays in use.
    rotate(&dir, &cert1, &key2);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            reloads("refused").await >= 1.0
        })
        .await
    );
    assert!(curl(&sluice, &ca2, "--http2", "/healthz").is_ok());
    assert!(sluice.logged(&["new TLS certificate refused"]));

    stop.store(true, Ordering::Relaxed);
    for t in load {
        let failures = t.join().unwrap();
        assert!(failures.is_empty(), "failed during reloads: {failures:?}");
    }
    assert!(done.load(Ordering::Relaxed) >= 8, "the load ran");
}

/// With polling effectively off, SIGHUP alone makes sluice read the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let dir = scratch("sighup");
    let (ca1, cert1, key1) = make_test_pki(&dir.join("one"));
    let (ca2, cert2, key2) = make_test_pki(&dir.join("two"));
    let sluice = start_tls(&dir, &cert1, &key1, &["--tls-reload-interval", "1h"]);
    assert!(curl(&sluice, &ca1, "--http1.1", "/healthz").is_ok());
    rotate(&dir, &cert2, &key2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        curl(&sluice, &ca1, "--http1.1", "/healthz").is_ok(),
        "not reloaded yet"
    );
    Command::new("kill")
        .args(["-HUP", &sluice.pid().to_string()])
        .status()
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            metric(&sluice, "sluice_tls_certificate_reloads_total", "loaded").await >= 1.0
        })
        .await
    );
    assert!(curl(&sluice, &ca2, "--http1.1", "/healthz").is_ok());
    assert!(sluice.logged(&["TLS certificate reloaded", "SIGHUP"]));
}

/// A certificate signed by the test CA whose validity ended in 2020
/// (`openssl ca` can backdate; `x509 -req` cannot). Returns (cert, key).
fn expired_pair(pki: &Path) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        pki.join("ca.cnf"),
        "[ca]\ndefault_ca = t\n[t]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(pki.join("index.txt"), "").unwrap();
    std::fs::write(pki.join("serial"), "1000\n").unwrap();
    run(&[
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-cert",
        "ca.pem",
        "-keyfile",
        "ca.key",
        "-in",
        "leaf.csr",
        "-out",
        "expired.pem",
        "-notext",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20200102000000Z",
        "-extfile",
        "leaf.ext",
    ]);
    (pki.join("expired.pem"), pki.join("leaf.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_at_start_and_at_reload() {
    let dir = scratch("expired");
    let (ca, cert, key) = make_test_pki(&dir.join("pki"));
    let (expired, same_key) = expired_pair(&dir.join("pki"));

    // At start: sluice exits with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--origin",
            &samples(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&expired)
        .arg("--tls-key")
        .arg(&same_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the certificate has expired"), "{stderr}");

    // At reload: refused, the valid pair stays in use.
    let sluice = start_tls(&dir, &cert, &key, &["--tls-reload-interval", "200ms"]);
    rotate(&dir, &expired, &same_key);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            metric(&sluice, "sluice_tls_certificate_reloads_total", "refused").await >= 1.0
        })
        .await
    );
    assert!(sluice.logged(&["the certificate has expired"]));
    assert!(curl(&sluice, &ca, "--http2", "/healthz").is_ok());
}

/// `--hsts` adds Strict-Transport-Security to every answer over TLS
/// (RFC 6797 allows it only on a secure transport), errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_over_tls() {
    let dir = scratch("hsts");
    let (ca, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(
        &dir,
        &cert,
        &key,
        &["--hsts", "max-age=31536000; includeSubDomains"],
    );
    for path in ["/sunset.jpg", "/no-such-file.jpg"] {
        let out = Command::new("curl")
            .args(["-sS", "--http2", "-o", "/dev/null", "-D", "-", "--cacert"])
            .arg(&ca)
            .arg(format!("https://127.0.0.1:{}{path}", sluice.addr.port()))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            head.contains("strict-transport-security: max-age=31536000; includesubdomains\r\n"),
            "{path}: {head}"
        );
    }
}

/// `--https-redirect-listen` answers plain HTTP with a 308 to the same
/// host and path over https (nginx: `return 301 https://$host$request_uri`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleartext_listener_redirects_to_https() {
    let dir = scratch("redirect");
    let (_, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(
        &dir,
        &cert,
        &key,
        &[
            "--https-redirect-listen",
            "127.0.0.1:0",
            "--https-redirect-port",
            "8443",
        ],
    );
    // The harness hands over the listening line before it keeps it.
    let mut line = None;
    for _ in 0..100 {
        line = sluice
            .logs()
            .into_iter()
            .find(|l| l.contains("\"listening\""));
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = line.unwrap();
    let redirect: std::net::SocketAddr = common::json_field(&line, "redirect").parse().unwrap();
    let ask = |host: &str, target: &str| {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        async move {
            let (answer, _) =
                common::raw_exchange(redirect, request.as_bytes(), Duration::from_secs(5)).await;
            String::from_utf8_lossy(&answer).to_string()
        }
    };
    let answer = ask("images.example.com:80", "/img/a%20b.jpg?w=1").await;
    assert!(answer.starts_with("HTTP/1.1 308 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nlocation: https://images.example.com:8443/img/a%20b.jpg?w=1\r\n"),
        "{answer}"
    );
    // No usable Host: no redirect to guess.
    let answer = ask("bad host", "/").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

/// A self-signed certificate for `name` alone (DNS SAN), and its key.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The subject of the certificate sluice presents for `server_name`
/// (`None`: send no SNI), as openssl s_client sees it.
fn presented_subject(sluice: &Sluice, server_name: Option<&str>) -> String {
    let mut s_client = Command::new("openssl");
    s_client
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", sluice.addr.port()),
        ])
        .stdin(std::process::Stdio::null());
    match server_name {
        Some(name) => s_client.args(["-servername", name]),
        None => s_client.arg("-noservername"),
    };
    let out = s_client.output().unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let subject = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&subject.stdout).trim().to_string()
}

/// Several pairs: the one valid for the client's server name is presented;
/// without SNI, or for an unknown name, the first (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_chosen_by_server_name() {
    let dir = scratch("sni");
    let (a_cert, a_key) = self_signed(&dir, "a.example");
    let (b_cert, b_key) = self_signed(&dir, "b.example");
    let cert_list = format!("{},{}", a_cert.display(), b_cert.display());
    let sluice = Sluice::start(&[
        "--origin",
        &samples(),
        "--tls-cert",
        &cert_list,
        "--tls-key",
        &a_key.display().to_string(),
        "--tls-key",
        &b_key.display().to_string(),
    ]);
    assert_eq!(
        presented_subject(&sluice, Some("b.example")),
        "subject=CN = b.example"
    );
    assert_eq!(
        presented_subject(&sluice, Some("a.example")),
        "subject=CN = a.example"
    );
    assert_eq!(presented_subject(&sluice, None), "subject=CN = a.example");
    assert_eq!(
        presented_subject(&sluice, Some("other.example")),
        "subject=CN = a.example"
    );
    // And a real request by name, trusting only b's certificate.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(&b_cert)
        .args([
            "--resolve",
            &format!("b.example:{}:127.0.0.1", sluice.addr.port()),
        ])
        .arg(format!(
            "https://b.example:{}/sunset.jpg",
            sluice.addr.port()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn certificates_and_keys_must_pair_up() {
    let dir = scratch("pairs");
    let (a_cert, a_key) = self_signed(&dir, "a.example");
    let (b_cert, _) = self_signed(&dir, "b.example");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&a_cert)
        .arg("--tls-cert")
        .arg(&b_cert)
        .arg("--tls-key")
        .arg(&a_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--tls-cert and --tls-key come in pairs: 2 certificates, 1 keys"),
        "{stderr}"
    );
}

/// GET `url` with hyper's client on rustls (ring; hyper-rustls, as
/// sluice's own https origins use it), trusting only `ca`, offering h2 and
/// http/1.1 or http/1.1 alone: (status, HTTP version, body).
async fn rustls_get(ca: &Path, url: &str, http1_only: bool) -> (u16, http::Version, Vec<u8>) {
    use http_body_util::BodyExt;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if http1_only {
        connector.enable_http1().build()
    } else {
        connector.enable_http1().enable_http2().build()
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
    let r = client.get(url.parse().unwrap()).await.unwrap();
    let (status, version) = (r.status().as_u16(), r.version());
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, version, body)
}

/// The same over rustls, a second TLS stack: h2 by ALPN, and http/1.1
/// when the client offers only that; bodies byte-identical to the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rustls_client_gets_h2_and_http1() {
    let dir = scratch("rustls");
    let (ca, cert, key) = make_test_pki(&dir.join("pki"));
    let sluice = start_tls(&dir, &cert, &key, &[]);
    let file = std::fs::read(format!("{}/dandelions.jpg", samples())).unwrap();
    let url = format!("https://127.0.0.1:{}/dandelions.jpg", sluice.addr.port());
    for (http1_only, version) in [
        (false, http::Version::HTTP_2),
        (true, http::Version::HTTP_11),
    ] {
        let (status, got_version, body) = rustls_get(&ca, &url, http1_only).await;
        assert_eq!(status, 200);
        assert_eq!(got_version, version);
        assert!(body == file, "the body differs from the file");
    }
}
