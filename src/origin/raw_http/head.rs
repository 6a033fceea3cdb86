//! HTTP/1.1 heads: the request line and headers sluice sends, and the
//! response head it parses (httparse) into a status, headers and framing
//! (RFC 9112 §6.3).

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::error::Error;

/// Largest response head accepted from an origin (hyper's default is ~400 KiB
/// of buffer; heads of image origins are a few hundred bytes).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the origin closes the connection.
    UntilClose,
}

pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this body.
    pub keep_alive: bool,
}

pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// An interim (1xx) response of this many bytes: skip it.
    Interim(usize),
    /// The final head, and how many bytes it took.
    Final(Head, usize),
}

/// `GET /path HTTP/1.1` and the headers, ending with the blank line.
pub fn request(method: &Method, target: &str, host: &HeaderValue, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + target.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn invalid(what: &'static str) -> Error {
    Error::invalid_response(what)
}

/// Parse a response head from the start of `buf`.
pub fn parse(buf: &[u8], method: &Method) -> Result<Parsed, Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid("origin sent more than 100 response headers"))
        }
        Err(_) => return Err(invalid("origin sent a malformed response head")),
    };
    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| invalid("origin sent an invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(invalid("origin switched protocols unasked"));
    }
    if status.is_informational() {
        return Ok(Parsed::Interim(len));
    }
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| invalid("origin sent an invalid header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| invalid("origin sent an invalid header value"))?;
        headers.append(name, value);
    }
    let framing = framing(status, method, &headers)?;
    let http11 = response.version == Some(1);
    let close = has_token(&headers, CONNECTION, "close");
    let keep_alive = !close
        && (http11 || has_token(&headers, CONNECTION, "keep-alive"))
        && framing != Framing::UntilClose;
    if framing == Framing::Chunked {
        // The chunks are decoded here; what the client gets is re-framed.
        headers.remove(CONTENT_LENGTH);
    }
    Ok(Parsed::Final(
        Head {
            status,
            headers,
            framing,
            keep_alive,
        },
        len,
    ))
}

fn framing(status: StatusCode, method: &Method, headers: &HeaderMap) -> Result<Framing, Error> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.to_str().unwrap_or("x").split(',') {
            // Digits only: `u64::from_str` would also take "+5", which
            // would then reach the client as it is.
            let part = part.trim();
            let n: u64 = part
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
                .ok_or_else(|| invalid("origin sent an invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("origin sent conflicting Content-Lengths"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Head {
        match parse(raw.as_bytes(), &method) {
            Ok(Parsed::Final(h, len)) => {
                assert_eq!(len, raw.len());
                h
            }
            _ => panic!("not a final head: {raw:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", get.clone());
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n",
            get.clone(),
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.headers.contains_key(CONTENT_LENGTH));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", get.clone());
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", get.clone());
        assert!(!h.keep_alive);
        let h = head(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            get.clone(),
        );
        assert!(!h.keep_alive);
        let h = head(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            get,
        );
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD);
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn bad_heads_are_refused_and_interim_ones_skipped() {
        let get = Method::GET;
        let conflicting = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n";
        assert!(parse(conflicting.as_bytes(), &get).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", &get).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n", &get).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n", &get).is_err());
        assert!(parse(b"NOT HTTP\r\n\r\n", &get).is_err());
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\n", &get),
            Ok(Parsed::Partial)
        ));
        assert!(matches!(
            parse(
                b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200",
                &get
            ),
            Ok(Parsed::Interim(40))
        ));
    }

    #[test]
    fn the_request_head_is_well_formed() {
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("bytes=0-1"));
        let out = request(
            &Method::GET,
            "/a%20b.jpg?x=1",
            &HeaderValue::from_static("origin:81"),
            &h,
        );
        assert_eq!(
            out,
            b"GET /a%20b.jpg?x=1 HTTP/1.1\r\nhost: origin:81\r\nrange: bytes=0-1\r\n\r\n"
        );
    }
}
