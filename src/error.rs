//! The one error type of sluice, after pingora's `pingora-error`.
//!
//! A proxy has to decide, for every failure, which status to answer with
//! (or whether to abort a response that has already started), whose fault
//! it was, and whether trying again can help. So an [`Error`] records:
//!
//! - [`ErrorKind`]: *what* went wrong, as a cause (a connect timeout, a
//!   body that broke, a manifest over a limit), never as an HTTP status.
//!   Statuses are chosen once, in the server (`server::status`), so no
//!   lower layer picks one;
//! - [`ErrorSource`]: *where* it came from (upstream, downstream, internal);
//! - [`RetryType`]: whether the same request may be sent again: never, or
//!   only when it went out on a reused (pooled) connection that the origin
//!   had closed, or always (a body broken mid-way may be resumed);
//! - a short reason that is safe to show to a client, and the underlying
//!   cause for the log line only.
//!
//! Errors are `Clone` (the cause is shared), so coalesced waiters and the
//! entries of one failed zip source share one failure with its cause.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// Who is responsible for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    /// The origin (HTTP server or directory) failed or misbehaved.
    Upstream,
    /// The client sent something we refuse, or went away.
    Downstream,
    /// sluice itself: configuration, resources, bugs.
    Internal,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Upstream => "upstream",
            ErrorSource::Downstream => "downstream",
            ErrorSource::Internal => "internal",
        }
    }
}

/// Whether a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryType {
    Never,
    /// Only if it went out on a reused connection: a pooled connection the
    /// origin closed while idle fails this way, and a new one will not.
    ReusedOnly,
    /// Always (with `Range` from where it broke, for a body).
    Always,
}

/// What went wrong: a cause, not a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    // ---- the origin
    /// Could not connect, or the connection was refused or reset before
    /// any response byte.
    ConnectFailed,
    /// No connection within `--connect-timeout`.
    ConnectTimeout,
    /// No response head within `--first-byte-timeout`.
    FirstByteTimeout,
    /// A body paused longer than `--idle-timeout`.
    IdleTimeout,
    /// The origin broke the protocol: a malformed or oversized head,
    /// conflicting lengths, an unasked range.
    InvalidResponse,
    /// A body failed mid-way: reset, cut short, a broken chunk.
    BodyBroken,
    /// The origin answered with this error status (image sources, zip
    /// entries: where the origin's status is a fact to report).
    OriginStatus(u16),
    /// The origin answered an archive entry with this status. The client
    /// asked for the archive, not the entry, so this is a bad gateway
    /// (mod_zip answers 500), never the entry's own 404.
    EntryRefused(u16),

    // ---- the client
    /// Malformed: a path, a processing option, a header, a body encoding.
    InvalidRequest,
    /// Not allowed: a path escaping its base, a bad signature, a foreign source.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RangeNotSatisfiable,
    /// A body, manifest or source over a size limit.
    TooLarge,
    /// Well-formed input that cannot be processed: an image that does not
    /// decode or has too many pixels, a manifest that breaks its rules.
    Unprocessable,
    /// The request line is over `--max-request-line`.
    UriTooLong,
    /// The request's header lines are over `--max-header-bytes`.
    HeadersTooLarge,
    /// A request body that did not arrive within `--body-timeout`, or
    /// slower than `--min-body-rate`.
    BodyTimeout,
    /// The client went away, or its connection failed.
    ClientGone,

    // ---- sluice
    /// A bounded queue is full (image workers).
    QueueFull,
    /// The memory budget has no room now for a holder that may not wait.
    BudgetFull,
    /// A job took longer than `--processing-timeout`.
    ProcessingTimeout,
    /// Anything else that is our own fault.
    Internal,
}

impl ErrorKind {
    /// The side a kind belongs to unless told otherwise.
    pub fn default_source(self) -> ErrorSource {
        use ErrorKind::*;
        match self {
            ConnectFailed | ConnectTimeout | FirstByteTimeout | IdleTimeout | InvalidResponse
            | BodyBroken | OriginStatus(_) | EntryRefused(_) => ErrorSource::Upstream,
            InvalidRequest | Forbidden | NotFound | MethodNotAllowed | RangeNotSatisfiable
            | TooLarge | Unprocessable | UriTooLong | HeadersTooLarge | BodyTimeout
            | ClientGone => ErrorSource::Downstream,
            QueueFull | BudgetFull | ProcessingTimeout | Internal => ErrorSource::Internal,
        }
    }

    /// The retry decision a kind implies unless told otherwise.
    fn default_retry(self) -> RetryType {
        use ErrorKind::*;
        match self {
            // Closed or reset before any byte: what a stale pooled
            // connection looks like.
            ConnectFailed => RetryType::ReusedOnly,
            // A body that broke or stalled mid-way may be resumed.
            BodyBroken | IdleTimeout => RetryType::Always,
            _ => RetryType::Never,
        }
    }

    /// A short, stable label (`kind="connect_timeout"` in metrics).
    pub fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            ConnectFailed => "connect_failed",
            ConnectTimeout => "connect_timeout",
            FirstByteTimeout => "first_byte_timeout",
            IdleTimeout => "idle_timeout",
            InvalidResponse => "invalid_response",
            BodyBroken => "body_broken",
            OriginStatus(_) => "origin_status",
            EntryRefused(_) => "entry_refused",
            InvalidRequest => "invalid_request",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            RangeNotSatisfiable => "range_not_satisfiable",
            TooLarge => "too_large",
            Unprocessable => "unprocessable",
            UriTooLong => "uri_too_long",
            HeadersTooLarge => "headers_too_large",
            BodyTimeout => "body_timeout",
            ClientGone => "client_gone",
            QueueFull => "queue_full",
            BudgetFull => "budget_full",
            ProcessingTimeout => "processing_timeout",
            Internal => "internal",
        }
    }

    /// A refusal by one of the client-facing limits: worth a log line (an
    /// operator tuning limits needs to see them), unlike other refusals.
    pub fn is_client_limit(self) -> bool {
        matches!(
            self,
            ErrorKind::BodyTimeout
                | ErrorKind::UriTooLong
                | ErrorKind::HeadersTooLarge
                | ErrorKind::TooLarge
        )
    }
}

type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failure: what, from where, whether to retry, and a reason a client may read.
#[derive(Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub source: ErrorSource,
    pub retry: RetryType,
    /// Short, client-safe explanation ("origin timed out after 10s").
    pub reason: Cow<'static, str>,
    cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            source: kind.default_source(),
            retry: kind.default_retry(),
            reason: reason.into(),
            cause: None,
        }
    }

    /// Attach the underlying error; it is logged but never sent to a client.
    pub fn with_cause(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    /// Reassign the side (e.g. a manifest error in a manifest the origin sent).
    pub fn from_side(mut self, source: ErrorSource) -> Self {
        self.source = source;
        self
    }

    /// Override the retry decision.
    pub fn retry(mut self, retry: RetryType) -> Self {
        self.retry = retry;
        self
    }

    /// May the request be sent again, given whether it went out on a reused
    /// connection?
    pub fn may_retry(&self, reused: bool) -> bool {
        match self.retry {
            RetryType::Never => false,
            RetryType::ReusedOnly => reused,
            RetryType::Always => true,
        }
    }

    /// The same failure with `context: ` before its reason.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.reason = format!("{context}: {}", self.reason).into();
        self
    }

    /// The underlying cause, for logs.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    pub fn connect_failed(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::ConnectFailed, reason)
    }
    pub fn invalid_response(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidResponse, reason)
    }
    pub fn body_broken(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BodyBroken, reason)
    }
    pub fn invalid_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, reason)
    }
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Forbidden, reason)
    }
    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, reason)
    }
    pub fn unprocessable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unprocessable, reason)
    }
    pub fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, reason)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.as_str(),
            self.source.as_str(),
            self.reason
        )?;
        if let Some(c) = &self.cause {
            write!(f, ": {c:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.source.as_str(), self.reason)?;
        if let Some(c) = &self.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// An origin's error status as a kind (for image sources and zip entries).
pub fn origin_status(status: StatusCode, context: &str) -> Error {
    Error::new(
        ErrorKind::OriginStatus(status.as_u16()),
        format!(
            "{context}origin answered {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_side_and_retry_decision() {
        let e = Error::connect_failed("closed");
        assert_eq!(e.source, ErrorSource::Upstream);
        assert!(e.may_retry(true) && !e.may_retry(false));
        assert!(Error::body_broken("reset").may_retry(false));
        assert!(!Error::new(ErrorKind::FirstByteTimeout, "slow").may_retry(true));
        assert_eq!(Error::invalid_request("x").source, ErrorSource::Downstream);
        assert_eq!(
            Error::new(ErrorKind::QueueFull, "x").source,
            ErrorSource::Internal
        );
        let manifest = Error::unprocessable("bad line").from_side(ErrorSource::Upstream);
        assert_eq!(manifest.source, ErrorSource::Upstream);
    }

    #[test]
    fn clones_keep_the_cause_and_display_keeps_reason_and_cause() {
        let e = Error::body_broken("origin reset").with_cause(std::io::Error::other("ECONNRESET"));
        let shared = e.clone();
        assert_eq!(
            shared.to_string(),
            "upstream error: origin reset: ECONNRESET"
        );
        assert!(std::error::Error::source(&shared).is_some());
        assert_eq!(e.context("a.jpg").reason, "a.jpg: origin reset");
    }
}
