//! Header hygiene between client and origin: hop-by-hop headers are dropped
//! in both directions (RFC 9110 §7.6.1, including those a `Connection`
//! header names), and `X-Forwarded-For`, `Via` and `X-Request-Id` are added.

use std::net::IpAddr;

use http::header::{
    HeaderName, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE, VIA,
};
use http::{HeaderMap, HeaderValue, Version};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Remove hop-by-hop headers, and any header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
}

/// The headers sent to the origin for a client request: the client's, less
/// hop-by-hop and Host (the origin client sets its own), plus forwarding info.
pub fn to_origin(
    mut headers: HeaderMap,
    version: Version,
    client_ip: IpAddr,
    request_id: &HeaderValue,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    append_forwarded_for(&mut headers, client_ip);
    append_via(&mut headers, version);
    headers.insert(X_REQUEST_ID, request_id.clone());
    headers
}

/// The origin's response headers as sent to the client.
pub fn to_client(mut headers: HeaderMap, version: Version) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    append_via(&mut headers, version);
    headers
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: IpAddr) {
    let prior = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let value = if prior.is_empty() {
        client_ip.to_string()
    } else {
        format!("{prior}, {client_ip}")
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

fn append_via(headers: &mut HeaderMap, version: Version) {
    let via = match version {
        Version::HTTP_10 => "1.0 sluice",
        Version::HTTP_2 => "2 sluice",
        Version::HTTP_3 => "3 sluice",
        _ => "1.1 sluice",
    };
    headers.append(VIA, HeaderValue::from_static(via));
}

/// RFC 6266 / RFC 8187 `attr-char`: everything else is percent-encoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition: {kind}; filename="…"` (`kind` is `attachment` or
/// `inline`), plus `filename*=UTF-8''…` (RFC 8187) for names that are not
/// plain printable ASCII; the ASCII fallback has `_` in their place.
pub fn content_disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = if ascii == name {
        format!("{kind}; filename=\"{ascii}\"")
    } else {
        format!(
            "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
            percent_encoding::utf8_percent_encode(name, ATTR_CHAR)
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("image/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_utf8_name() {
        assert_eq!(
            content_disposition("attachment", "photos.zip"),
            "attachment; filename=\"photos.zip\""
        );
        assert_eq!(
            content_disposition("attachment", "Fotos März.zip"),
            "attachment; filename=\"Fotos M_rz.zip\"; filename*=UTF-8''Fotos%20M%C3%A4rz.zip"
        );
        assert_eq!(
            content_disposition("inline", "a\"b.jpg"),
            "inline; filename=\"a_b.jpg\"; filename*=UTF-8''a%22b.jpg"
        );
    }

    #[test]
    fn forwarded_for_appends_and_via_is_added() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(HOST, HeaderValue::from_static("client.example"));
        let id = HeaderValue::from_static("abc");
        let out = to_origin(h, Version::HTTP_11, "127.0.0.1".parse().unwrap(), &id);
        assert_eq!(out[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(out[VIA], "1.1 sluice");
        assert_eq!(out[X_REQUEST_ID], "abc");
        assert!(!out.contains_key(HOST));
    }
}
