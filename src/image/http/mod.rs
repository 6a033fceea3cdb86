//! The HTTP side of recompression: imgproxy-compatible processing URLs
//! ([`url`], [`options`], [`signature`]), the validators of results
//! ([`etag`]) and the `/img` route itself ([`service`]).

pub mod etag;
pub mod options;
pub mod service;
pub mod signature;
pub mod url;
