//! Validators of processed images.
//!
//! A result's ETag is `"sl-{key}-{origin validator}"`: `key` hashes the
//! normalized options and output format; the origin validator (its ETag, or
//! else its Last-Modified) is carried inside, base64url-encoded. So when a
//! client revalidates, sluice can ask the *origin* conditionally
//! (If-None-Match / If-Modified-Since) and, on the origin's 304, answer 304
//! itself without fetching or processing anything.

use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::url::{base64url_decode, base64url_encode};

/// A 64-bit hex digest of what determines the output besides the source.
pub fn options_key(normalized_options: &str, format: &str) -> String {
    let digest = Sha256::digest(format!("{normalized_options}|{format}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The origin's validator, as it will be replayed to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginValidator {
    ETag(String),
    LastModified(String),
}

impl OriginValidator {
    pub fn from_response(headers: &HeaderMap) -> Option<Self> {
        let text = |h| {
            headers
                .get(h)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        text(ETAG)
            .map(OriginValidator::ETag)
            .or_else(|| text(LAST_MODIFIED).map(OriginValidator::LastModified))
    }

    fn encode(&self) -> String {
        let tagged = match self {
            OriginValidator::ETag(e) => format!("e{e}"),
            OriginValidator::LastModified(d) => format!("m{d}"),
        };
        base64url_encode(tagged.as_bytes())
    }

    fn decode(s: &str) -> Option<Self> {
        let text = String::from_utf8(base64url_decode(s)?).ok()?;
        let (tag, value) = text.split_at_checked(1)?;
        HeaderValue::from_str(value).ok()?;
        match tag {
            "e" => Some(OriginValidator::ETag(value.to_string())),
            "m" => Some(OriginValidator::LastModified(value.to_string())),
            _ => None,
        }
    }

    /// The conditional header to send to the origin.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let (name, value) = match self {
            OriginValidator::ETag(e) => (IF_NONE_MATCH, e),
            OriginValidator::LastModified(d) => (IF_MODIFIED_SINCE, d),
        };
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
}

/// Our ETag for a result.
pub fn etag(key: &str, origin: Option<&OriginValidator>) -> String {
    match origin {
        Some(v) => format!("\"sl-{key}-{}\"", v.encode()),
        // Without an origin validator the result cannot be revalidated.
        None => format!("\"sl-{key}\""),
    }
}

/// From a client's If-None-Match, the origin validator of one of our ETags
/// made with the same `key` (same options and format), if any.
pub fn revalidation(
    if_none_match: Option<&HeaderValue>,
    key: &str,
) -> Option<(String, OriginValidator)> {
    let list = if_none_match?.to_str().ok()?;
    let prefix = format!("sl-{key}-");
    list.split(',').find_map(|tag| {
        let tag = tag.trim();
        let inner = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
        let encoded = inner.strip_prefix(&prefix)?;
        let v = OriginValidator::decode(encoded)?;
        Some((format!("\"{inner}\""), v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_round_trips_the_origin_validator() {
        let key = options_key("rs:fit:300:0:0", "jpg");
        let v = OriginValidator::ETag("\"abc-123\"".into());
        let tag = etag(&key, Some(&v));
        let inm = HeaderValue::from_str(&format!("\"other\", {tag}")).unwrap();
        let (matched, back) = revalidation(Some(&inm), &key).unwrap();
        assert_eq!(matched, tag);
        assert_eq!(back, v);
        let mut h = HeaderMap::new();
        back.apply(&mut h);
        assert_eq!(h[IF_NONE_MATCH], "\"abc-123\"");
    }

    #[test]
    fn other_options_or_foreign_tags_do_not_revalidate() {
        let key = options_key("rs:fit:300:0:0", "jpg");
        let other = options_key("rs:fit:301:0:0", "jpg");
        assert_ne!(key, other);
        let v = OriginValidator::LastModified("Wed, 21 Oct 2015 07:28:00 GMT".into());
        let inm = HeaderValue::from_str(&etag(&key, Some(&v))).unwrap();
        assert!(revalidation(Some(&inm), &other).is_none());
        let junk = HeaderValue::from_static("\"sl-0000000000000000-!!!\", *");
        assert!(revalidation(Some(&junk), "0000000000000000").is_none());
        assert!(revalidation(None, &key).is_none());
    }
}
