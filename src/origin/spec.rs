//! What an origin is, as the configuration names it: an HTTP(S) URL or a
//! directory, with the timeouts and extra CA its client uses. Parsed once
//! at start-up (`--origin`, `--connect-timeout`, ...) into these.

use std::path::PathBuf;
use std::time::Duration;

/// Where bodies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginSpec {
    Http(http::Uri),
    Dir(PathBuf),
}

impl OriginSpec {
    /// Parse an `--origin` value: an `http(s)://host[:port][/base]` URL
    /// (no query), or a local directory.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            let uri: http::Uri = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
            if uri.host().is_none() {
                return Err(format!("{s:?}: no host"));
            }
            if uri.query().is_some() {
                return Err(format!("{s:?}: a query string is not allowed"));
            }
            return Ok(OriginSpec::Http(uri));
        }
        if s.contains("://") {
            return Err(format!(
                "{s:?}: only http://, https:// or a directory path are supported"
            ));
        }
        Ok(OriginSpec::Dir(PathBuf::from(s)))
    }
}

/// Timeouts towards the origin.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
}

/// The configured origin and how it is reached.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub spec: OriginSpec,
    pub timeouts: Timeouts,
    /// A PEM bundle of CAs to trust besides the system's (`--origin-ca-file`).
    pub extra_ca: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_directories_are_told_apart() {
        assert!(matches!(
            OriginSpec::parse("http://127.0.0.1:81/base"),
            Ok(OriginSpec::Http(_))
        ));
        assert_eq!(
            OriginSpec::parse("/srv/images"),
            Ok(OriginSpec::Dir("/srv/images".into()))
        );
        assert!(OriginSpec::parse("ftp://x").is_err());
        assert!(OriginSpec::parse("http://x/?a=1").is_err());
    }
}
