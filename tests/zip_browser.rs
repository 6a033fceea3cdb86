//! A real browser downloads archives from sluice and reports the progress
//! it sees: headless Chromium (Debian's) loads a page served through
//! sluice's pass-through, which POSTs a JSON manifest to `/zip` with
//! XMLHttpRequest, as a download page with a progress bar does, and writes
//! what its `progress` events said into the page. `lengthComputable` with
//! the right `total` is exactly what a progress bar (and the browser's own
//! download shelf) needs.
#![allow(clippy::unwrap_used)]

mod common;
mod zip_origin;

use std::process::Command;

use bytes::Bytes;
use common::Sluice;
use serde_json::{json, Value};
use zip_origin::{StaticFile, ZipOrigin};

/// The page: POST `manifest`, then print the progress events' facts.
fn page(manifest: &Value) -> String {
    format!(
        r#"<!doctype html><html><body>waiting<script>
const events = [];
const xhr = new XMLHttpRequest();
xhr.open('POST', '/zip');
xhr.setRequestHeader('content-type', 'application/json');
xhr.responseType = 'arraybuffer';
xhr.onprogress = e => events.push([e.lengthComputable, e.loaded, e.total]);
xhr.onloadend = () => {{
  const got = xhr.response ? xhr.response.byteLength : -1;
  document.body.textContent = 'RESULT ' + JSON.stringify({{
    status: xhr.status,
    received: got,
    computable: events.length > 0 && events.every(e => e[0]),
    totals: [...new Set(events.map(e => e[2]))],
    events: events.length,
  }});
}};
xhr.send({manifest});
</script></body></html>"#,
        manifest = serde_json::to_string(&manifest.to_string()).unwrap()
    )
}

/// Load `path` from sluice in headless Chromium; the page's RESULT.
fn browse(sluice: &Sluice, path: &str) -> Value {
    let profile = std::env::temp_dir().join(format!("sluice-chromium-{}", std::process::id()));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(sluice.url(path))
        .output()
        .expect("chromium (Debian's) runs; .ci/setup installs it");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split("RESULT ")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| {
            panic!(
                "no result in the page: {dom}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(&json.replace("&quot;", "\"")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_length_of_a_probed_archive_and_not_of_a_chunked_one() {
    let origin = ZipOrigin::start().await;
    let sample = |name: &str| {
        Bytes::from(
            std::fs::read(format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        )
    };
    let entries = json!([
        {"source": "photos/sunset.jpg", "name": "trip/sunset.jpg"},
        {"source": "photos/rocket.jpg", "name": "trip/rocket.jpg"},
        {"source": "bytes/3000000", "name": "trip/big.jpg"}
    ]);
    for (path, manifest) in [
        (
            "/probed.html",
            json!({"sizes": "probe", "entries": entries}),
        ),
        ("/chunked.html", json!({"entries": entries})),
    ] {
        origin.add_file(
            path,
            StaticFile {
                body: Bytes::from(page(&manifest)),
                headers: vec![("content-type", "text/html; charset=utf-8")],
                needs_header: None,
                pass_headers_from_query: false,
            },
        );
    }
    for name in ["sunset.jpg", "rocket.jpg"] {
        origin.add_file(
            &format!("/photos/{name}"),
            StaticFile {
                body: sample(name),
                headers: vec![("content-type", "image/jpeg")],
                needs_header: None,
                pass_headers_from_query: false,
            },
        );
    }
    let sluice = Sluice::start(&["--origin", &origin.url()]);

    // The length the archive has (a plain client, for comparison).
    let reference = common::client()
        .post(sluice.url("/zip"))
        .header("content-type", "application/json")
        .body(json!({"sizes": "probe", "entries": entries}).to_string())
        .send()
        .await
        .unwrap();
    let length: u64 = reference.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reference.bytes().await.unwrap().len() as u64, length);

    let sluice_in_thread = &sluice;
    let (probed, chunked) = tokio::task::block_in_place(|| {
        (
            browse(sluice_in_thread, "/probed.html"),
            browse(sluice_in_thread, "/chunked.html"),
        )
    });
    assert_eq!(probed["status"], 200, "{probed}");
    assert_eq!(probed["received"], length, "{probed}");
    assert_eq!(probed["computable"], true, "a progress bar: {probed}");
    assert_eq!(probed["totals"], json!([length]), "{probed}");

    // Without the probe the browser gets the same bytes but no length:
    // an indeterminate bar.
    assert_eq!(chunked["status"], 200, "{chunked}");
    assert_eq!(chunked["received"], length, "{chunked}");
    assert_eq!(chunked["computable"], false, "{chunked}");
}
