//! `sluice health`: the client side of a health check.
//!
//! One plain HTTP/1.1 GET to a local endpoint (normally `/readyz`) with an
//! overall timeout, so that a container's HEALTHCHECK or an exec probe can use
//! the sluice binary itself: the runtime image has no shell and no curl.
//! The answer is a verdict, not a body: 2xx is healthy, anything else
//! (other status, refused connection, timeout, bad URL) is not.

use std::process::ExitCode;
use std::time::Duration;

use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::HealthArgs;

/// Why a probe did not get a 2xx answer, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The URL is not something this probe can ask (only `http://`).
    BadUrl(String),
    /// No answer within the timeout.
    TimedOut(Duration),
    /// Connecting or talking HTTP failed.
    Connection(String),
    /// The endpoint answered, but not with a 2xx.
    Status(StatusCode),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailure::BadUrl(why) => write!(f, "bad URL: {why}"),
            ProbeFailure::TimedOut(d) => write!(f, "no answer within {d:?}"),
            ProbeFailure::Connection(why) => write!(f, "{why}"),
            ProbeFailure::Status(s) => write!(f, "answered {s}"),
        }
    }
}

/// GET `url` and return its status if it is 2xx. The whole exchange
/// (connect, send, response headers) must finish within `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> Result<StatusCode, ProbeFailure> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ProbeFailure::BadUrl(format!("{url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(ProbeFailure::BadUrl(format!(
            "{url:?}: only http:// is supported (the probe is meant for a local listener)"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| ProbeFailure::BadUrl(format!("{url:?}: no host")))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    match tokio::time::timeout(timeout, get(uri, host, port)).await {
        Ok(Ok(status)) if status.is_success() => Ok(status),
        Ok(Ok(status)) => Err(ProbeFailure::Status(status)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProbeFailure::TimedOut(timeout)),
    }
}

async fn get(uri: Uri, host: String, port: u16) -> Result<StatusCode, ProbeFailure> {
    // `[::1]` arrives bracketed from the URI; connect() wants it bare.
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((connect_host, port))
        .await
        .map_err(|e| ProbeFailure::Connection(format!("cannot connect to {host}:{port}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeFailure::Connection(format!("HTTP handshake failed: {e}")))?;
    // Drives the connection; it ends when `sender` is dropped.
    tokio::spawn(conn);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or(host);
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, "sluice-health")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeFailure::BadUrl(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ProbeFailure::Connection(format!("request failed: {e}")))?;
    let status = response.status();
    // Read the (tiny) body to its end so the server logs a completed
    // exchange rather than a client that went away. Its content is ignored.
    let _ = Limited::new(response.into_body(), MAX_BODY).collect().await;
    Ok(status)
}

/// Health bodies are a few bytes; stop reading after this much.
const MAX_BODY: usize = 64 * 1024;

/// `sluice health`: probe once on a small runtime of its own, say what
/// happened on stderr if it failed, and exit 0 (healthy) or 1.
pub fn run(args: &HealthArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice health: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(probe(&args.url, args.timeout)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("sluice health: {}: {why}", args.url);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_urls_it_cannot_ask() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            probe("https://127.0.0.1/readyz", t).await,
            Err(ProbeFailure::BadUrl(_))
        ));
        assert!(matches!(
            probe("not a url", t).await,
            Err(ProbeFailure::BadUrl(_))
        ));
        assert!(matches!(
            probe("/readyz", t).await,
            Err(ProbeFailure::BadUrl(_))
        ));
    }

    #[tokio::test]
    async fn refused_connection_is_a_failure() {
        // Bind then drop to get a port that nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let url = format!("http://127.0.0.1:{port}/readyz");
        assert!(matches!(
            probe(&url, Duration::from_secs(2)).await,
            Err(ProbeFailure::Connection(_))
        ));
    }
}
