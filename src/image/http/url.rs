//! The processing URL: `{prefix}/{signature}/{options...}/plain/{source}[@ext]`
//! or `{prefix}/{signature}/{options...}/{base64url(source)}[.ext]`, as in
//! imgproxy. This module splits a path into its parts and resolves the
//! source to an origin path; the options themselves are [`super::options`].
//!
//! A segment containing `:` is an option; the first segment without one is
//! `plain` or the start of a base64 source (which may itself be split by `/`).

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS};

use crate::error::{Error, Result};
use crate::origin::target;

/// URL-safe base64 that accepts input with or without `=` padding.
const BASE64URL_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    BASE64URL_ANY_PAD.decode(s).ok()
}

pub fn base64url_encode(bytes: &[u8]) -> String {
    BASE64URL_ANY_PAD.encode(bytes)
}

/// A processing path split into its parts. Borrowed from the request path.
#[derive(Debug, PartialEq)]
pub struct ProcessingPath<'a> {
    pub signature: &'a str,
    /// Everything after the signature, starting with `/`: what is signed.
    pub signed: &'a str,
    pub options: Vec<&'a str>,
    /// The source as a URL or path (`local:///a.jpg`, `/a.jpg`,
    /// `http://host/a.jpg`), percent-encoded.
    pub source: String,
    /// The extension given after `@` or `.`, if any.
    pub extension: Option<&'a str>,
}

/// Split `path` (with the route prefix already removed, starting with `/`).
pub fn split(path: &str) -> Result<ProcessingPath<'_>> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| Error::invalid_request("processing path must start with /"))?;
    let (signature, after) = rest
        .split_once('/')
        .ok_or_else(|| Error::invalid_request("processing path has no source"))?;
    let signed = &rest[signature.len()..];
    let mut options = Vec::new();
    let mut remaining = after;
    loop {
        let (segment, tail) = remaining.split_once('/').unwrap_or((remaining, ""));
        if segment == "plain" {
            let (source, extension) = match tail.rfind('@') {
                Some(at) => (&tail[..at], Some(&tail[at + 1..])),
                None => (tail, None),
            };
            if source.is_empty() {
                return Err(Error::invalid_request("processing path has no source"));
            }
            return Ok(ProcessingPath {
                signature,
                signed,
                options,
                source: source.to_string(),
                extension,
            });
        }
        if segment.contains(':') {
            options.push(segment);
            if tail.is_empty() {
                return Err(Error::invalid_request("processing path has no source"));
            }
            remaining = tail;
            continue;
        }
        // Base64url source, possibly split into several segments.
        let encoded_with_ext = remaining;
        let (encoded, extension) = match encoded_with_ext.rfind('.') {
            Some(dot) => (&encoded_with_ext[..dot], Some(&encoded_with_ext[dot + 1..])),
            None => (encoded_with_ext, None),
        };
        let joined: String = encoded.split('/').collect();
        if joined.is_empty() {
            return Err(Error::invalid_request("processing path has no source"));
        }
        let bytes = base64url_decode(&joined).ok_or_else(|| {
            Error::invalid_request("source is neither plain/ nor valid base64url")
        })?;
        let decoded =
            String::from_utf8(bytes).map_err(|_| Error::invalid_request("source is not UTF-8"))?;
        return Ok(ProcessingPath {
            signature,
            signed,
            options,
            source: percent_encoding::utf8_percent_encode(&decoded, UNSAFE_IN_URL).to_string(),
            extension,
        });
    }
}

/// Characters a decoded base64 source may contain that cannot stand in a URL.
const UNSAFE_IN_URL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Where a source is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// `None`: the configured origin; `Some(i)`: the i-th `--allowed-source`.
    pub allowed_source: Option<usize>,
    /// Path (and query) on that origin, starting with `/`, percent-encoded.
    pub path: String,
}

/// An absolute `http(s)://` URL split into the parts an allow-list
/// compares: scheme and authority normalised (lower case, default port
/// dropped), path and query as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    scheme: String,
    authority: String,
    path: String,
    query: Option<String>,
}

impl SourceUrl {
    /// Parse `url`; user info (`user@host`), other schemes and a missing
    /// host are refused (403: such a source is never fetched).
    pub fn parse(url: &str) -> Result<SourceUrl> {
        let refuse = |why: &str| Error::forbidden(format!("source URL {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| refuse("is not an absolute URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => ":80",
            "https" => ":443",
            _ => return Err(refuse("must be http:// or https://")),
        };
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(end);
        if authority.is_empty() {
            return Err(refuse("has no host"));
        }
        if authority.contains(['@', '\\', '%']) {
            return Err(refuse("has user info or an escaped host"));
        }
        let mut authority = authority.to_ascii_lowercase();
        if authority.ends_with(default_port) {
            authority.truncate(authority.len() - default_port.len());
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(SourceUrl {
            scheme,
            authority,
            path: path.to_string(),
            query,
        })
    }

    /// The rest of this URL's path (and its query) below `prefix`, if it
    /// lies there: same scheme and authority, and the prefix's path
    /// segments equal this path's first segments, compared decoded and
    /// whole (`/b/` covers `/b/x.jpg`, not `/bx/y.jpg`).
    fn below(&self, prefix: &SourceUrl) -> Option<String> {
        if self.scheme != prefix.scheme || self.authority != prefix.authority {
            return None;
        }
        let wanted = target::segments(&prefix.path);
        let raw: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        if raw.len() < wanted.len() {
            return None;
        }
        let matches = raw
            .iter()
            .zip(&wanted)
            .all(|(seg, want)| target::segments(seg).first().map(|s| &s[..]) == Some(&want[..]));
        if !matches {
            return None;
        }
        let mut rest = format!("/{}", raw[wanted.len()..].join("/"));
        if self.path.ends_with('/') && raw.len() > wanted.len() {
            rest.push('/');
        }
        if let Some(q) = &self.query {
            rest.push('?');
            rest.push_str(q);
        }
        Some(rest)
    }
}

/// Map a source to an origin. `local:///p` and `/p` are paths on the
/// configured origin; a full URL must lie below one of the `allowed`
/// prefixes ([`SourceUrl`]) and is fetched from that prefix. Sources whose
/// path could leave their origin's base path are refused
/// ([`target::check`]), whatever their form.
pub fn resolve(source: &str, allowed: &[SourceUrl]) -> Result<ResolvedSource> {
    if let Some(path) = source.strip_prefix("local://") {
        return origin_path(path, None);
    }
    if source.starts_with('/') {
        return origin_path(source, None);
    }
    if source.contains("://") {
        let url = SourceUrl::parse(source)?;
        target::check(&url.path)?;
        for (i, prefix) in allowed.iter().enumerate() {
            if let Some(rest) = url.below(prefix) {
                return origin_path(&rest, Some(i));
            }
        }
        return Err(Error::forbidden("source URL is not an allowed source"));
    }
    origin_path(&format!("/{source}"), None)
}

fn origin_path(path: &str, allowed_source: Option<usize>) -> Result<ResolvedSource> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(Error::invalid_request("source path is empty"));
    }
    target::check(path)?;
    Ok(ResolvedSource {
        allowed_source,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn plain_source_with_extension() {
        let p = split("/insecure/rs:fit:300/q:80/plain/local:///photos/a%20b.jpg@webp").unwrap();
        assert_eq!(p.signature, "insecure");
        assert_eq!(
            p.signed,
            "/rs:fit:300/q:80/plain/local:///photos/a%20b.jpg@webp"
        );
        assert_eq!(p.options, vec!["rs:fit:300", "q:80"]);
        assert_eq!(p.source, "local:///photos/a%20b.jpg");
        assert_eq!(p.extension, Some("webp"));
        let r = resolve(&p.source, &[]).unwrap();
        assert_eq!(r.path, "/photos/a%20b.jpg");
        assert_eq!(r.allowed_source, None);
    }

    #[test]
    fn base64_source_split_over_segments() {
        // imgproxy's documented example.
        let p = split(
            "/sig/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
        )
        .unwrap();
        assert_eq!(p.options, vec!["rs:fill:300:400:0", "g:sm"]);
        assert_eq!(p.source, "http://example.com/images/curiosity.jpg");
        assert_eq!(p.extension, Some("png"));
        let allowed = allow(&["https://other/", "http://example.com/images"]);
        let r = resolve(&p.source, &allowed).unwrap();
        assert_eq!(r.allowed_source, Some(1));
        assert_eq!(r.path, "/curiosity.jpg");
    }

    #[test]
    fn sources_without_options_or_extension() {
        let p = split("/_/plain/a.jpg").unwrap();
        assert!(p.options.is_empty());
        assert_eq!(p.extension, None);
        assert_eq!(resolve(&p.source, &[]).unwrap().path, "/a.jpg");
        let enc = base64url_encode(b"local:///x y.png");
        let path = format!("/_/w:10/{enc}");
        let p = split(&path).unwrap();
        assert_eq!(p.source, "local:///x%20y.png");
    }

    #[test]
    fn foreign_urls_need_an_allowed_prefix() {
        let good = allow(&["http://good.example/"]);
        let e = resolve("http://evil.example/a.jpg", &good).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        // A prefix match must not be fooled by a longer host name.
        let e = resolve("http://good.example.evil/a.jpg", &good);
        assert_eq!(e.unwrap_err().kind, ErrorKind::Forbidden);
    }

    fn allow(prefixes: &[&str]) -> Vec<SourceUrl> {
        prefixes
            .iter()
            .map(|p| SourceUrl::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn allow_list_prefixes_match_whole_segments_after_normalising() {
        let b = allow(&["http://127.0.0.1:18081/b/"]);
        let path = |s: &str| resolve(s, &b).map(|r| r.path);
        assert_eq!(
            path("http://127.0.0.1:18081/b/Wood.jpg").unwrap(),
            "/Wood.jpg"
        );
        assert_eq!(
            path("HTTP://127.0.0.1:18081/b/x/y.jpg?v=1").unwrap(),
            "/x/y.jpg?v=1"
        );
        assert_eq!(
            path("http://127.0.0.1:18081/%62/Wood.jpg").unwrap(),
            "/Wood.jpg"
        );
        for escape in [
            "http://127.0.0.1:18081/b/../Wood.jpg",
            "http://127.0.0.1:18081/b/%2e%2e/Wood.jpg",
            "http://127.0.0.1:18081/b/..%2fWood.jpg",
            "http://127.0.0.1:18081/b/sub/../../Wood.jpg",
            "http://127.0.0.1:18081/bx/Wood.jpg",
            "http://127.0.0.1:18081/Wood.jpg",
            "http://127.0.0.1:18081@evil.example/b/Wood.jpg",
            "http://127.0.0.1:18082/b/Wood.jpg",
            "ftp://127.0.0.1:18081/b/Wood.jpg",
        ] {
            assert_eq!(
                path(escape).unwrap_err().kind,
                ErrorKind::Forbidden,
                "{escape}"
            );
        }
        // Default ports and host case are the same authority.
        let d = allow(&["https://Images.Example/"]);
        assert_eq!(
            resolve("https://images.example:443/a.jpg", &d)
                .unwrap()
                .path,
            "/a.jpg"
        );
        // Local sources cannot leave the origin either.
        for local in ["local:///../x.jpg", "/%2e%2e/x.jpg", "a/../../x.jpg"] {
            assert_eq!(
                resolve(local, &[]).unwrap_err().kind,
                ErrorKind::Forbidden,
                "{local}"
            );
        }
    }

    #[test]
    fn malformed_paths_are_400() {
        for p in [
            "",
            "/",
            "/sig",
            "/sig/w:10",
            "/sig/w:10/plain/",
            "/sig/!!!notbase64",
        ] {
            assert_eq!(
                split(p).map(|_| ()).unwrap_err().kind,
                ErrorKind::InvalidRequest,
                "{p:?}"
            );
        }
    }
}
