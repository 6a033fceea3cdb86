//! Memory is given back after a burst (issue 14, item 3): after 32
//! concurrent clients of zips and of images, the process's resident set
//! returns to within 16 MiB of its idle baseline within 30 s. jemalloc
//! purges freed pages only when something allocates, unless its
//! background threads run (`background_thread:true` in
//! `sluice_ffi::jemalloc::MALLOC_CONF`); without them an idle sluice kept
//! what the burst had touched (RSS 37 MiB against a 15 MiB baseline, for
//! as long as it stayed idle).
#![allow(clippy::unwrap_used)]

mod common;
mod zip_origin;

use std::time::{Duration, Instant};

use common::{client, Sluice};
use serde_json::json;
use zip_origin::ZipOrigin;

const MIB: u64 = 1 << 20;
use common::SAMPLE_PHOTOS as SAMPLES;

async fn zip_once(sluice: &Sluice) {
    let entries: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|dir| {
            SAMPLES.map(
                |s| json!({"source": format!("file/samples/{s}"), "name": format!("{dir}/{s}")}),
            )
        })
        .collect();
    let resp = client()
        .post(sluice.url("/zip"))
        .body(json!({"entries": entries}).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.len() > 4_000_000);
}

async fn images_once(sluice: &Sluice, i: usize) {
    for s in ["sunset.jpg", "picos-de-europa.jpg", "dandelions.jpg"] {
        let url = sluice.url(&format!(
            "/img/_/rs:fit:{}:0/plain/file/samples/{s}@webp",
            600 + i
        ));
        let resp = client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{s}");
        resp.bytes().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_returns_to_its_baseline_after_a_burst_of_zips_and_images() {
    let origin = ZipOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url()]);
    // Warm: the first of each kind sets up what stays (pools, tables).
    zip_once(&sluice).await;
    images_once(&sluice, 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = sluice.rss();

    let sluice_ref = &sluice;
    let burst = (0..32).map(|i| async move {
        for _ in 0..2 {
            if i % 2 == 0 {
                zip_once(sluice_ref).await;
            } else {
                images_once(sluice_ref, i).await;
            }
        }
    });
    futures_util::future::join_all(burst).await;
    let peak = sluice.peak_rss();
    assert!(
        peak >= baseline + 24 * MIB,
        "the burst must raise memory for this test to mean anything: baseline {} MiB, peak {} MiB",
        baseline / MIB,
        peak / MIB
    );

    let since = Instant::now();
    let mut seen = Vec::new();
    loop {
        let rss = sluice.rss();
        seen.push(rss / MIB);
        if rss <= baseline + 16 * MIB {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "RSS stayed above baseline {} MiB + 16 MiB for 30 s after a burst (peak {} MiB): {seen:?}",
            baseline / MIB,
            peak / MIB
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
