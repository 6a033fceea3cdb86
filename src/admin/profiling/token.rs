//! The bearer token that guards the debug endpoints (`--debug-token`,
//! `SLUICE_DEBUG_TOKEN`). It never appears in `Debug` output or `--help`,
//! and it is compared in constant time.

use std::fmt;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use subtle::ConstantTimeEq;

/// Shortest token accepted: 16 characters, e.g. `openssl rand -hex 16` gives 32.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct DebugToken(String);

impl fmt::Debug for DebugToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DebugToken(<redacted>)")
    }
}

/// Why a request to a debug endpoint was refused (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A bearer token that does not match.
    Wrong,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing token",
            Refusal::Malformed => "not a bearer token",
            Refusal::Wrong => "wrong token",
        }
    }
}

impl DebugToken {
    /// The clap value parser: printable ASCII (it travels in a header), no
    /// spaces, at least [`MIN_TOKEN_LEN`] characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "a debug token needs at least {MIN_TOKEN_LEN} characters (try `openssl rand -hex 16`)"
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a debug token must be printable ASCII without spaces".into());
        }
        Ok(DebugToken(s.to_string()))
    }

    /// Check `Authorization: Bearer <token>`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Refusal::Missing);
        };
        let value = value.as_bytes();
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let presented = match value.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => return Err(Refusal::Malformed),
        };
        // `ct_eq` takes the same time for every byte position, so timing
        // does not reveal how long a matching prefix is. Slices of different
        // lengths are unequal at once, which reveals only the length.
        if bool::from(presented.ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = DebugToken::parse("0123456789abcdef0123").unwrap();
        assert_eq!(
            token.check(&with_auth("Bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(
            token.check(&with_auth("bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(token.check(&HeaderMap::new()), Err(Refusal::Missing));
        assert_eq!(
            token.check(&with_auth("Basic 0123456789abcdef0123")),
            Err(Refusal::Malformed)
        );
        assert_eq!(token.check(&with_auth("Bearer")), Err(Refusal::Malformed));
        assert_eq!(
            token.check(&with_auth("Bearer 0123456789abcdef012")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            token.check(&with_auth("Bearer 0123456789abcdef01234")),
            Err(Refusal::Wrong)
        );
        assert_eq!(token.check(&with_auth("Bearer ")), Err(Refusal::Wrong));
    }

    #[test]
    fn short_or_unprintable_tokens_are_refused_and_debug_hides_the_token() {
        assert!(DebugToken::parse("short").is_err());
        assert!(DebugToken::parse("has a space in it, long enough").is_err());
        let t = DebugToken::parse("0123456789abcdef").unwrap();
        assert!(!format!("{t:?}").contains("0123"));
    }
}
