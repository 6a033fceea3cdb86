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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 304 Not Modified.
    NotModified,
    /// 200 with the whole representation.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 206 `multipart/byteranges` with these inclusive ranges, in the
    /// order asked (only from [`evaluate_multi`]).
    Multipart(Vec<(u64, u64)>),
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluate If-None-Match / If-Modified-Since, then Range / If-Range, for a
/// representation of `len` bytes. A request for several ranges gets the
/// whole representation, which RFC 9110 allows and which is what most CDNs
/// do for binary media.
pub fn evaluate(headers: &HeaderMap, v: &Validators, len: u64) -> Decision {
    evaluate_multi(headers, v, len, 1)
}

/// [`evaluate`], answering up to `max_ranges` ranges as a multipart
/// response (more than that get the whole representation, as nginx's
/// `max_ranges` does).
pub fn evaluate_multi(
    headers: &HeaderMap,
    v: &Validators,
    len: u64,
    max_ranges: usize,
) -> Decision {
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
    parse_ranges(range, len, max_ranges)
}

fn if_range_holds(if_range: &str, v: &Validators) -> bool {
    // The other ETag exactly as sent (mod_zip compares the bytes, and
    // nginx's `add_header ETag 3.14159` sends one without quotes).
    if !if_range.starts_with("W/") && v.if_range_etag.as_deref() == Some(if_range) {
        return true;
    }
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

/// Parse a `Range: bytes=...` header of a single range (several get the
/// whole representation).
#[cfg(test)]
fn parse_range(header: &str, len: u64) -> Decision {
    parse_ranges(header, len, 1)
}

/// Parse a `Range: bytes=...` header of up to `max_ranges` ranges. A
/// header with a malformed range is ignored as a whole (RFC 9110 §14.2);
/// unsatisfiable ranges are left out, and only when none is left is the
/// answer 416.
pub fn parse_ranges(header: &str, len: u64, max_ranges: usize) -> Decision {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Decision::Full; // unknown unit: ignore
    };
    // One more than allowed is enough to know there are too many: a header
    // of thousands of commas costs no more than that.
    let max = max_ranges.max(1);
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(max + 1)
        .collect();
    if specs.is_empty() || specs.len() > max {
        return Decision::Full;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    for one in specs {
        match parse_one(one, len) {
            Decision::Partial { start, end } => ranges.push((start, end)),
            Decision::Unsatisfiable => {}
            _ => return Decision::Full,
        }
    }
    match ranges.as_slice() {
        [] => Decision::Unsatisfiable,
        [(start, end)] => Decision::Partial {
            start: *start,
            end: *end,
        },
        _ => Decision::Multipart(ranges),
    }
}

/// One `first-last`, `first-` or `-suffix`.
fn parse_one(spec: &str, len: u64) -> Decision {
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
        assert_eq!(
            parse_ranges("bytes=0-1, 128-131", 303, 16),
            Decision::Multipart(vec![(0, 1), (128, 131)])
        );
        // Unsatisfiable ranges are left out; all of them: 416.
        assert_eq!(
            parse_ranges("bytes=5-6,1000-", 303, 16),
            Decision::Partial { start: 5, end: 6 }
        );
        assert_eq!(
            parse_ranges("bytes=1000-,2000-", 303, 16),
            Decision::Unsatisfiable
        );
        // A malformed range voids the header; too many ranges too.
        assert_eq!(parse_ranges("bytes=0-1,x", 303, 16), Decision::Full);
        assert_eq!(parse_ranges("bytes=0-1,2-3,4-5", 303, 2), Decision::Full);
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
        // The other (mod_zip manifest's) ETag, byte for byte, even unquoted.
        let mut other = v();
        other.if_range_etag = Some("3.14159".into());
        let unquoted = h(&[(RANGE, "bytes=0-1"), (IF_RANGE, "3.14159")]);
        assert_eq!(
            evaluate(&unquoted, &other, 10),
            Decision::Partial { start: 0, end: 1 }
        );
        let wrong = h(&[(RANGE, "bytes=0-1"), (IF_RANGE, "2.71828")]);
        assert_eq!(evaluate(&wrong, &other, 10), Decision::Full);
    }
}
