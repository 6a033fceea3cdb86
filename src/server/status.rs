//! The one place where a failure's cause becomes an HTTP status. Lower
//! layers say what went wrong ([`ErrorKind`]); the answer a proxy gives
//! for it is decided here.

use http::StatusCode;

use crate::error::{Error, ErrorKind};

/// The status of the short answer to a request that failed before its
/// response started.
pub fn of(e: &Error) -> StatusCode {
    use ErrorKind::*;
    match e.kind {
        ConnectFailed | InvalidResponse | BodyBroken => StatusCode::BAD_GATEWAY,
        ConnectTimeout | FirstByteTimeout | IdleTimeout => StatusCode::GATEWAY_TIMEOUT,
        // An image source the origin does not have (or hides) is reported
        // as such; any other origin answer is a bad gateway.
        OriginStatus(s @ (403 | 404 | 410)) => {
            StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        OriginStatus(_) | EntryRefused(_) => StatusCode::BAD_GATEWAY,
        InvalidRequest => StatusCode::BAD_REQUEST,
        Forbidden => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        UriTooLong => StatusCode::URI_TOO_LONG,
        HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        // nginx's "client closed request"; only ever seen in the log.
        ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        QueueFull => StatusCode::TOO_MANY_REQUESTS,
        BudgetFull | ProcessingTimeout => StatusCode::SERVICE_UNAVAILABLE,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_the_statuses_a_proxy_uses() {
        let status = |kind| of(&Error::new(kind, "x")).as_u16();
        assert_eq!(status(ErrorKind::ConnectFailed), 502);
        assert_eq!(status(ErrorKind::ConnectTimeout), 504);
        assert_eq!(status(ErrorKind::FirstByteTimeout), 504);
        assert_eq!(status(ErrorKind::OriginStatus(404)), 404);
        assert_eq!(status(ErrorKind::OriginStatus(500)), 502);
        assert_eq!(status(ErrorKind::EntryRefused(404)), 502);
        assert_eq!(status(ErrorKind::QueueFull), 429);
        assert_eq!(status(ErrorKind::BudgetFull), 503);
        assert_eq!(status(ErrorKind::BodyTimeout), 408);
    }
}
