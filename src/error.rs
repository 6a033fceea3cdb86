//! The one error type of sluice.
//!
//! A proxy has to decide, for every failure, which status to answer with (or
//! whether to abort a response that has already started) and whose fault it
//! was. So, like pingora's error, [`Error`] records *where* a failure came
//! from ([`Side`]) and *what* went wrong ([`Kind`]), plus a short reason that
//! is safe to show to a client. The underlying cause, if any, is kept for the
//! log line only.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// Who is responsible for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The origin (HTTP server or directory) failed or misbehaved.
    Upstream,
    /// The client sent something we refuse, or went away.
    Downstream,
    /// sluice itself: configuration, resources, bugs.
    Internal,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Upstream => "upstream",
            Side::Downstream => "downstream",
            Side::Internal => "internal",
        }
    }
}

/// What went wrong. Each kind maps to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Could not connect, or the connection was refused/reset before headers.
    UpstreamUnavailable,
    /// Connect, first-byte or idle timeout towards the origin.
    UpstreamTimeout,
    /// The origin broke the protocol or a body stream failed mid-way.
    UpstreamBroken,
    /// The origin answered with an error status that we must surface (zip entries).
    UpstreamStatus(StatusCode),
    /// The request is malformed or not allowed.
    BadRequest,
    /// The path escapes the origin, or a signature is wrong.
    Forbidden,
    /// Nothing at that path.
    NotFound,
    /// The method is not served here.
    MethodNotAllowed,
    /// A range that cannot be satisfied.
    RangeNotSatisfiable,
    /// A body or manifest is over a configured limit.
    PayloadTooLarge,
    /// The client did not send its request (body) in time, or too slowly.
    RequestTimeout,
    /// The request line is over `--max-request-line`.
    UriTooLong,
    /// The request's header lines are over `--max-header-bytes`.
    HeadersTooLarge,
    /// Well-formed input that sluice cannot process (bad image, limits on pixels).
    Unprocessable,
    /// A bounded queue is full.
    TooManyRequests,
    /// sluice is draining or a processing deadline passed.
    Unavailable,
    /// The client went away or its connection failed.
    ClientGone,
    /// Anything else that is our own fault.
    Internal,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::UpstreamUnavailable | Kind::UpstreamBroken => StatusCode::BAD_GATEWAY,
            Kind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Kind::UpstreamStatus(s) => s,
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::UriTooLong => StatusCode::URI_TOO_LONG,
            Kind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // 499 is nginx's convention for "client closed request"; it only
            // ever reaches the log, since the client is gone.
            Kind::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A refusal by one of the client-facing limits: worth a log line
    /// (an operator tuning limits needs to see them), unlike other 4xx.
    pub fn is_client_limit(self) -> bool {
        matches!(
            self,
            Kind::RequestTimeout | Kind::UriTooLong | Kind::HeadersTooLarge | Kind::PayloadTooLarge
        )
    }

    /// The side a kind belongs to by default.
    fn side(self) -> Side {
        match self {
            Kind::UpstreamUnavailable
            | Kind::UpstreamTimeout
            | Kind::UpstreamBroken
            | Kind::UpstreamStatus(_) => Side::Upstream,
            Kind::BadRequest
            | Kind::Forbidden
            | Kind::NotFound
            | Kind::MethodNotAllowed
            | Kind::RangeNotSatisfiable
            | Kind::PayloadTooLarge
            | Kind::RequestTimeout
            | Kind::UriTooLong
            | Kind::HeadersTooLarge
            | Kind::Unprocessable
            | Kind::ClientGone => Side::Downstream,
            Kind::TooManyRequests | Kind::Unavailable | Kind::Internal => Side::Internal,
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure, with where it came from and a reason a client may read.
pub struct Error {
    pub side: Side,
    pub kind: Kind,
    /// Short, client-safe explanation ("origin timed out after 10s").
    pub reason: Cow<'static, str>,
    cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, reason: impl Into<Cow<'static, str>>) -> Self {
        Error {
            side: kind.side(),
            kind,
            reason: reason.into(),
            cause: None,
        }
    }

    /// Attach the underlying error; it is logged but never sent to a client.
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Reassign the side (e.g. a NotFound that the origin reported is upstream's).
    pub fn on(mut self, side: Side) -> Self {
        self.side = side;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn upstream_unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::UpstreamUnavailable, reason)
    }
    pub fn upstream_timeout(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::UpstreamTimeout, reason)
    }
    pub fn upstream_broken(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::UpstreamBroken, reason)
    }
    pub fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::BadRequest, reason)
    }
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Forbidden, reason)
    }
    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::NotFound, reason)
    }
    pub fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Internal, reason)
    }

    /// The underlying cause, for logs.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status(),
            self.side.as_str(),
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
        write!(f, "{} error: {}", self.side.as_str(), self.reason)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_statuses_a_proxy_uses() {
        assert_eq!(Error::upstream_unavailable("x").status(), 502);
        assert_eq!(Error::upstream_timeout("x").status(), 504);
        assert_eq!(Error::upstream_broken("x").status(), 502);
        assert_eq!(Error::forbidden("x").status(), 403);
        assert_eq!(Error::upstream_timeout("x").side, Side::Upstream);
        assert_eq!(Error::bad_request("x").side, Side::Downstream);
        assert_eq!(Error::new(Kind::TooManyRequests, "x").status(), 429);
    }

    #[test]
    fn display_keeps_reason_and_cause() {
        let e =
            Error::upstream_broken("origin reset").with_cause(std::io::Error::other("ECONNRESET"));
        assert_eq!(e.to_string(), "upstream error: origin reset: ECONNRESET");
    }
}
