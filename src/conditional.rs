//! Conditional and range requests (RFC 9110 §13 and §14) for representations
//! that sluice itself produces: files of the directory origin and archives of
//! known size. Responses from an HTTP origin are passed through untouched;
//! the origin already evaluated these headers.

use std::time::SystemTime;

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use http::HeaderMap;

/// The validators of one representation.
#[derive(Debug, Clone)]
pub struct Validators {
    /// A strong entity tag, quoted (`"5f1-3a"`).
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// Another entity tag and date that If-Range accepts (If-Range only,
    /// not If-None-Match or If-Modified-Since): for a mod_zip archive, the
    /// manifest response's `ETag` and `Last-Modified`, as mod_zip accepts them.
    pub if_range_etag: Option<String>,
    pub if_range_modified: Option<SystemTime>,
}

/// What to send for a GET/HEAD, after the conditionals were evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 304 Not Modified.
    NotModified,
    /// 200 with the whole representation.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluate If-None-Match / If-Modified-Since, then Range / If-Range, for a
/// representation of `len` bytes.
pub fn evaluate(headers: &HeaderMap, v: &Validators, len: u64) -> Decision {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|h| h.to_str().ok()) {
        // Weak comparison (§13.1.2); If-Modified-Since is ignored when present.
        if etag_list_matches(inm, &v.etag, false) {
            return Decision::NotModified;
        }
    } else if let (Some(ims), Some(lm)) = (
        headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|h| h.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok()),
        v.last_modified,
    ) {
        if truncate_to_secs(lm) <= ims {
            return Decision::NotModified;
        }
    }

    let Some(range) = headers.get(RANGE).and_then(|h| h.to_str().ok()) else {
        return Decision::Full;
    };
    if let Some(if_range) = headers.get(IF_RANGE).and_then(|h| h.to_str().ok()) {
        if !if_range_holds(if_range.trim(), v) {
            return Decision::Full;
        }
    }
    parse_range(range, len)
}

fn if_range_holds(if_range: &str, v: &Validators) -> bool {
    if if_range.starts_with('"') || if_range.starts_with("W/") {
        // If-Range needs a strong match.
        return !if_range.starts_with("W/")
            && (if_range == v.etag || v.if_range_etag.as_deref() == Some(if_range));
    }
    let Ok(date) = httpdate::parse_http_date(if_range) else {
        return false;
    };
    [v.last_modified, v.if_range_modified]
        .into_iter()
        .flatten()
        .any(|lm| truncate_to_secs(lm) == date)
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    // HTTP dates have one-second resolution.
    httpdate::parse_http_date(&httpdate::fmt_http_date(t)).unwrap_or(t)
}

/// Does an If-None-Match / If-Match list contain `etag`?
pub fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*"
            || if strong {
                !candidate.starts_with("W/") && !etag.starts_with("W/") && candidate == etag
            } else {
                bare(candidate) == bare(etag)
            }
    })
}

/// Parse a `Range: bytes=...` header. Only a single range is honoured; a
/// multi-range request gets the whole representation, which RFC 9110 allows
/// and which is what most CDNs do for binary media.
pub fn parse_range(header: &str, len: u64) -> Decision {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Decision::Full; // unknown unit: ignore
    };
    if spec.contains(',') {
        return Decision::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Decision::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes
        (true, false) => match parse(last) {
            Some(0) => Decision::Unsatisfiable,
            Some(_) if len == 0 => Decision::Unsatisfiable,
            Some(n) => Decision::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => Decision::Full,
        },
        // bytes=N- or bytes=N-M
        (false, _) => {
            let Some(start) = parse(first) else {
                return Decision::Full;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match parse(last) {
                    Some(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return Decision::Full, // invalid: ignore the header
                }
            };
            if start >= len {
                Decision::Unsatisfiable
            } else {
                Decision::Partial { start, end }
            }
        }
        (true, true) => Decision::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators {
        Validators {
            etag: "\"abc\"".into(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            if_range_etag: None,
            if_range_modified: None,
        }
    }

    fn h(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, val) in pairs {
            m.insert(k.clone(), HeaderValue::from_str(val).unwrap());
        }
        m
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Decision::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Decision::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Decision::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-200", 100),
            Decision::Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Decision::Partial { start: 50, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Decision::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Decision::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Decision::Full);
        assert_eq!(parse_range("bytes=9-3", 100), Decision::Full);
        assert_eq!(parse_range("items=0-1", 100), Decision::Full);
        assert_eq!(parse_range("bytes=0-", 0), Decision::Unsatisfiable);
    }

    #[test]
    fn not_modified_by_etag_or_date() {
        assert_eq!(
            evaluate(&h(&[(IF_NONE_MATCH, "\"x\", W/\"abc\"")]), &v(), 10),
            Decision::NotModified
        );
        assert_eq!(
            evaluate(&h(&[(IF_NONE_MATCH, "\"x\"")]), &v(), 10),
            Decision::Full
        );
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(
            evaluate(&h(&[(IF_MODIFIED_SINCE, &date)]), &v(), 10),
            Decision::NotModified
        );
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert_eq!(
            evaluate(&h(&[(IF_MODIFIED_SINCE, &earlier)]), &v(), 10),
            Decision::Full
        );
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let ok = h(&[(RANGE, "bytes=0-1"), (IF_RANGE, "\"abc\"")]);
        assert_eq!(
            evaluate(&ok, &v(), 10),
            Decision::Partial { start: 0, end: 1 }
        );
        let stale = h(&[(RANGE, "bytes=0-1"), (IF_RANGE, "\"old\"")]);
        assert_eq!(evaluate(&stale, &v(), 10), Decision::Full);
        let weak = h(&[(RANGE, "bytes=0-1"), (IF_RANGE, "W/\"abc\"")]);
        assert_eq!(evaluate(&weak, &v(), 10), Decision::Full);
    }
}
