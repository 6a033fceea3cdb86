//! The cleartext listener that sends clients to https
//! (`--https-redirect-listen`): every request is answered `308 Permanent
//! Redirect` to the same host and target over https, on
//! `--https-redirect-port` (as nginx's `return 301 https://$host$request_uri`;
//! 308 keeps the method and body, 301 may not). A request without a usable
//! host name gets 400: there is nowhere safe to send it.

use http::header::{CONTENT_LENGTH, HOST, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};

use crate::body::{self, Body};
use crate::error::Error;

/// The redirect for `req`.
pub fn answer<B>(req: &Request<B>, https_port: u16) -> Result<Response<Body>, Error> {
    let authority = req
        .uri()
        .host()
        .or_else(|| req.headers().get(HOST).and_then(|v| v.to_str().ok()))
        .ok_or_else(no_host)?;
    let name = host_name(authority).ok_or_else(no_host)?;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let location = HeaderValue::from_str(&format!("https://{name}{port}{target}"))
        .map_err(|_| Error::invalid_request("the request target cannot be redirected"))?;
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response.headers_mut().insert(LOCATION, location);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(response)
}

fn no_host() -> Error {
    Error::invalid_request("no usable Host header to redirect to https")
}

/// The host name of a Host value (`name[:port]` or `[v6][:port]`), if it
/// is a DNS name or an address: letters, digits, `-` and `.`, or a
/// bracketed IPv6 address.
fn host_name(authority: &str) -> Option<&str> {
    let name = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let v6 = &authority[..=end];
        v6[1..end]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            .then_some(v6)?
    } else {
        let name = authority.split(':').next()?;
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            .then_some(name)?
    };
    (!name.is_empty() && name.len() <= 255).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_kept_and_anything_else_refused() {
        assert_eq!(
            host_name("images.example.com:80"),
            Some("images.example.com")
        );
        assert_eq!(host_name("[2001:db8::1]:8080"), Some("[2001:db8::1]"));
        assert_eq!(host_name("127.0.0.1"), Some("127.0.0.1"));
        for bad in ["", "a b", "evil.com/x", "a@b", "[::1", "[zz]"] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_redirect_keeps_the_target_and_names_the_port() {
        let req = Request::builder()
            .uri("/img/a%20b.jpg?w=1")
            .header(HOST, "images.example.com")
            .body(())
            .unwrap();
        let r = answer(&req, 8443).unwrap();
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers()[LOCATION],
            "https://images.example.com:8443/img/a%20b.jpg?w=1"
        );
        assert_eq!(
            answer(&req, 443).unwrap().headers()[LOCATION],
            "https://images.example.com/img/a%20b.jpg?w=1"
        );
    }
}
