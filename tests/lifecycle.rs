//! Health, readiness, graceful shutdown and the access log, on the real binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{client, json_field, Sluice, TestOrigin};
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_on_both_listeners() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url()]);
    for url in [
        sluice.url("/healthz"),
        sluice.url("/readyz"),
        sluice.admin_url("/healthz"),
        sluice.admin_url("/readyz"),
    ] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_download_finish_then_exits_0() {
    let origin = TestOrigin::start().await;
    let mut sluice = Sluice::start(&["--origin", &origin.url(), "--shutdown-grace", "20s"]);
    // 2 MB in 100 chunks, 15 ms apart: about 1.5 s.
    let r = client()
        .get(sluice.url("/slow/2000000?delay_ms=15&chunk=20000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = stream.next().await.unwrap().unwrap().len();
    sluice.sigterm();

    // While draining: not ready (admin listener), and no new connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client()
        .get(sluice.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(
        client().get(sluice.url("/healthz")).send().await.is_err(),
        "a draining sluice must not accept new connections"
    );

    while let Some(chunk) = stream.next().await {
        got += chunk.expect("the in-flight download must complete").len();
    }
    assert_eq!(got, 2_000_000);
    let status = sluice
        .wait_exit(Duration::from_secs(10))
        .expect("exit after drain");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_drain() {
    let origin = TestOrigin::start().await;
    let mut sluice = Sluice::start(&["--origin", &origin.url(), "--shutdown-grace", "500ms"]);
    let r = client()
        .get(sluice.url("/slow/100000000?delay_ms=10&chunk=1000"))
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let t = Instant::now();
    sluice.sigterm();
    let status = sluice.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "a cut-off download must end in an error, not cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_access_log_line_per_request_with_its_facts() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url()]);
    let r = client()
        .get(sluice.url("/bytes/12345?x=1"))
        .header("x-request-id", "log-me-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 12345);
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = sluice
            .logs()
            .into_iter()
            .find(|l| l.contains("\"request_id\":\"log-me-7\""))
        {
            break l;
        }
        assert!(Instant::now() < deadline, "no access log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(json_field(&line, "method"), "GET");
    assert_eq!(json_field(&line, "path"), "/bytes/12345");
    assert_eq!(json_field(&line, "status"), "200");
    assert_eq!(json_field(&line, "bytes"), "12345");
    assert_eq!(json_field(&line, "outcome"), "complete");
    assert!(json_field(&line, "duration_ms").parse::<f64>().unwrap() > 0.0);
    assert!(json_field(&line, "upstream_ms").parse::<f64>().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_max_connections_gets_503_until_one_closes() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url(), "--max-connections", "1"]);
    // The first connection is busy with a ~1 s download.
    let first = client()
        .get(sluice.url("/slow/1000000?delay_ms=10&chunk=10000"))
        .send()
        .await
        .unwrap();
    // A second one is answered at once, not left hanging in the backlog.
    let t = Instant::now();
    let r = client().get(sluice.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(first.bytes().await.unwrap().len(), 1_000_000);
    // Once the first has closed, connections are served again.
    let served = common::eventually(Duration::from_secs(3), || async {
        client()
            .get(sluice.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served);
}
