//! Checks on a request head that hyper leaves to us (RFC 9112 §3.2, and
//! our own size limits), made before any route sees the request.
//!
//! hyper refuses heads larger than its read buffer itself (431, and the
//! connection closes: [`crate::server`] logs and counts those); these
//! limits are the smaller, configurable ones: `--max-request-line` (414)
//! and `--max-header-bytes` (431).

use http::header::HOST;
use http::{Request, Version};

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_request_line: u64,
    pub max_header_bytes: u64,
}

pub fn check<B>(req: &Request<B>, limits: HeadLimits) -> Result<()> {
    let hosts = req.headers().get_all(HOST).iter().count();
    // HTTP/1.1 requires exactly one Host; HTTP/1.0 and HTTP/2 (with
    // :authority) may omit it; no version may repeat it.
    let host_ok = match req.version() {
        Version::HTTP_11 => hosts == 1,
        _ => hosts <= 1,
    };
    if !host_ok {
        return Err(Error::invalid_request(
            "an HTTP/1.1 request must carry exactly one Host header",
        ));
    }
    // Method, target and version with their separators and CRLF.
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + 1 + target + 11;
    if line as u64 > limits.max_request_line {
        return Err(Error::new(
            ErrorKind::UriTooLong,
            format!(
                "request line of {line} bytes is longer than {} (--max-request-line)",
                limits.max_request_line
            ),
        ));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes as u64 > limits.max_header_bytes {
        return Err(Error::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "request headers of {header_bytes} bytes are more than {} (--max-header-bytes)",
                limits.max_header_bytes
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line: 100,
        max_header_bytes: 200,
    };

    fn status(req: Request<()>) -> Option<u16> {
        check(&req, LIMITS)
            .err()
            .map(|e| super::super::status::of(&e).as_u16())
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let one = Request::get("/a").header(HOST, "x").body(()).unwrap();
        assert_eq!(status(one), None);
        let none = Request::get("/a").body(()).unwrap();
        assert_eq!(status(none), Some(400));
        let two = Request::get("/a")
            .header(HOST, "x")
            .header(HOST, "y")
            .body(())
            .unwrap();
        assert_eq!(status(two), Some(400));
        let old = Request::get("/a")
            .version(Version::HTTP_10)
            .body(())
            .unwrap();
        assert_eq!(status(old), None);
        let h2 = Request::get("http://x/a")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        assert_eq!(status(h2), None);
    }

    #[test]
    fn long_lines_and_many_header_bytes_are_refused() {
        let long = format!("/{}", "a".repeat(100));
        let r = Request::get(long.as_str())
            .header(HOST, "x")
            .body(())
            .unwrap();
        assert_eq!(status(r), Some(414));
        let r = Request::get("/a")
            .header(HOST, "x")
            .header("cookie", "c".repeat(200))
            .body(())
            .unwrap();
        assert_eq!(status(r), Some(431));
    }
}
