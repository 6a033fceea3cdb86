//! Request targets as an origin will read them, checked before any origin
//! sees them.
//!
//! Every fetch (pass-through, zip entries, image sources, allow-listed
//! source URLs) passes [`check`]: a target must not be able to leave the
//! origin's base path (`--origin http://host/base`, an `--allowed-source`
//! prefix, a directory). Origins differ in how they read a path: most
//! decode percent-escapes once and resolve dot-segments (RFC 3986 §5.2.4),
//! some treat `\` as `/` (IIS, many Node and Windows servers), and a chain
//! of proxies may decode twice. So a target is refused if a `..` segment
//! appears under any of those readings: raw, decoded once, decoded twice,
//! split at `/` or `\`. A NUL byte in any reading is refused too. Nothing
//! is rewritten: a target that passes goes to the origin byte for byte.
//!
//! [`segments`] gives the decoded path segments, for comparing a source URL
//! with an allow-list prefix segment by segment (never as a string prefix).

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::error::{Error, Result};

/// Check `path_and_query` (starting with `/`, still percent-encoded).
pub fn check(path_and_query: &str) -> Result<()> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    if !path.starts_with('/') {
        return Err(Error::invalid_request("request target must be a path"));
    }
    let once = decode(path.as_bytes());
    let twice = decode(&once);
    for reading in [path.as_bytes(), &once, &twice] {
        if reading.contains(&0) {
            return Err(Error::invalid_request("path contains a NUL byte"));
        }
        if reading
            .split(|b| *b == b'/' || *b == b'\\')
            .any(|segment| segment == b"..")
        {
            return Err(Error::forbidden("path escapes the origin's base path"));
        }
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Cow<'_, [u8]> {
    percent_decode(bytes).into()
}

/// The decoded segments of a path, empty ones (from `//` or a trailing
/// `/`) left out: `/a/b%20c/` is `["a", "b c"]`.
pub fn segments(path: &str) -> Vec<Cow<'_, [u8]>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode(s.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn every_reading_of_dot_dot_is_refused() {
        for target in [
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/..%2fx",
            "/..%2Fx",
            "/img.jpg/../../x",
            "/sub/..",
            "/..\\x",
            "/..%5cx",
            "/%252e%252e/x",
            "/a/%252e%252e%252fx",
            "/x?y=1&/../",
        ] {
            let expected = if target.starts_with("/x?") {
                None
            } else {
                Some(ErrorKind::Forbidden)
            };
            assert_eq!(check(target).err().map(|e| e.kind), expected, "{target}");
        }
    }

    #[test]
    fn ordinary_targets_pass_unchanged() {
        for target in [
            "/",
            "/a.jpg",
            "/a%20b/c.jpg?x=1",
            "/..a/b..",
            "/a/.../b",
            "/a/./b",
            "/%2e/x",
        ] {
            assert!(check(target).is_ok(), "{target}");
        }
        assert_eq!(check("/a%00b").unwrap_err().kind, ErrorKind::InvalidRequest);
        assert_eq!(check("a.jpg").unwrap_err().kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn segments_are_decoded_and_empty_ones_dropped() {
        let s = segments("/a//b%20c/");
        assert_eq!(
            s,
            vec![Cow::Borrowed(&b"a"[..]), Cow::Owned(b"b c".to_vec())]
        );
        assert!(segments("/").is_empty());
    }
}
