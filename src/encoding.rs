//! On-the-fly content encoding of pass-through responses.
//!
//! When the origin sends a compressible type (SVG, JSON, XML, text,
//! JavaScript, CSS) uncompressed, it is compressed as a stream to the best
//! coding the client accepts (br, zstd, gzip by q-value; ties in that
//! order). When the origin sends a coding the client does not accept, it is
//! decoded on the fly (and re-encoded if the client accepts another one).
//! Image types are never touched: they are compressed already.
//!
//! A transformed response drops Content-Length and Accept-Ranges, weakens the
//! ETag (`W/`), and every compressible response gets `Vary: Accept-Encoding`.
//!
//! Memory: a codec's window and tables are held for the whole stream, so each
//! transform reserves [`Coding::encoder_bytes`] or [`Coding::decoder_bytes`]
//! from the memory budget first. When the budget has no room, compression is
//! skipped (identity is always correct) and a needed decode answers 503. The
//! zstd decoder's window is capped so a hostile frame cannot ask for more.

use std::io;

use async_compression::tokio::bufread as codec;
use async_compression::Level;
use futures_util::TryStreamExt;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyDataStream;
use tokio::io::{AsyncBufRead, BufReader};
use tokio_util::io::StreamReader;

use crate::body::{self, Body};
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind};

/// Bodies shorter than this are not worth compressing (the framing costs more).
const MIN_COMPRESS_LEN: u64 = 256;

/// Largest zstd window accepted from an origin (8 MiB; zstd's default
/// limit is 128 MiB). Frames that need more fail as a corrupt body.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The content codings sluice can produce or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
    Deflate,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    /// Upper bound of what the encoder holds at the levels used below, plus
    /// the two 64 KiB chunk buffers of [`transcode`]. Derived from each
    /// codec's documented parameters (zlib level 6: 128 KiB window + 256 KiB
    /// hash; brotli q4 lgwin 22: 4 MiB ring buffer + hash tables; zstd level 3
    /// windowLog 21: 2 MiB + tables), not measured stage by stage.
    pub fn encoder_bytes(self) -> u64 {
        match self {
            Coding::Gzip | Coding::Deflate => 512 << 10,
            Coding::Br => 8 << 20,
            Coding::Zstd => 4 << 20,
        }
    }

    /// Upper bound of what the decoder holds: zlib's 32 KiB window, brotli's
    /// largest window (16 MiB at lgwin 24), zstd's window capped at
    /// 2^[`ZSTD_WINDOW_LOG_MAX`]; plus the chunk buffers.
    pub fn decoder_bytes(self) -> u64 {
        match self {
            Coding::Gzip | Coding::Deflate => 256 << 10,
            Coding::Br => 17 << 20,
            Coding::Zstd => (1 << ZSTD_WINDOW_LOG_MAX) + (1 << 20),
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token.trim().to_ascii_lowercase().as_str() {
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            _ => None,
        }
    }
}

/// A parsed `Accept-Encoding` header. A request without one is treated as
/// accepting only identity, as nginx and every browser-facing server do.
#[derive(Debug, Default, Clone)]
pub struct AcceptEncoding {
    entries: Vec<(String, f32)>,
}

impl AcceptEncoding {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut entries = Vec::new();
        for value in headers.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                if token.is_empty() {
                    continue;
                }
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0)
                    .clamp(0.0, 1.0);
                entries.push((token, q));
            }
        }
        AcceptEncoding { entries }
    }

    fn q(&self, token: &str) -> f32 {
        let find = |t: &str| self.entries.iter().find(|(e, _)| e == t).map(|(_, q)| *q);
        let q = find(token).or_else(|| match token {
            "gzip" => find("x-gzip"),
            _ => None,
        });
        q.or_else(|| find("*")).unwrap_or(0.0)
    }

    pub fn accepts(&self, coding: Coding) -> bool {
        self.q(coding.token()) > 0.0
    }

    /// The coding to compress with: highest q wins, ties go br > zstd > gzip.
    pub fn preferred(&self) -> Option<Coding> {
        let mut best: Option<(Coding, f32)> = None;
        for c in [Coding::Br, Coding::Zstd, Coding::Gzip] {
            let q = self.q(c.token());
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((c, q));
            }
        }
        best.map(|(c, _)| c)
    }
}

/// Is this media type worth compressing? Images other than SVG are not.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "image/svg+xml"
                | "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/manifest+json"
                | "application/wasm"
        )
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

/// What a response body needs after [`negotiate`] fixed its headers.
/// Codec memory is already reserved (HEAD reserves nothing).
pub enum Recode {
    /// The body goes to the client byte for byte.
    Unchanged,
    /// Decode the origin's coding, then maybe compress again.
    Transcode {
        decode: Option<(Coding, Option<Reservation>)>,
        encode: Option<(Coding, Option<Reservation>)>,
    },
}

impl Recode {
    pub fn is_unchanged(&self) -> bool {
        matches!(self, Recode::Unchanged)
    }

    /// Run `body` through the decided codecs.
    pub fn apply(self, mut body: Body) -> Body {
        if let Recode::Transcode { decode, encode } = self {
            if let Some((c, Some(held))) = decode {
                body = transcode(body, |r| decoder(c, r), held);
            }
            if let Some((c, Some(held))) = encode {
                body = transcode(body, |r| encoder(c, r), held);
            }
        }
        body
    }
}

/// Rewrite a 200 response's headers for the client's accepted codings and
/// say what its body needs. `head` transforms no body but keeps the headers
/// true. Codec memory is reserved from `budget` (see the module docs).
pub fn negotiate(
    status: StatusCode,
    accept: &AcceptEncoding,
    headers: &mut HeaderMap,
    head: bool,
    budget: &MemoryBudget,
) -> Result<Recode, Error> {
    let compressible = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_compressible);
    if status != StatusCode::OK {
        return Ok(Recode::Unchanged);
    }
    if compressible {
        add_vary_accept_encoding(headers);
    }
    let no_transform = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    if no_transform {
        return Ok(Recode::Unchanged);
    }

    let mut decode = None;
    let current = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    match current.as_deref() {
        None | Some("") | Some("identity") => {}
        Some(token) => {
            let known = Coding::from_token(token);
            match known {
                Some(c) if !accept.accepts(c) => {
                    let held = if head {
                        None
                    } else {
                        Some(
                            budget
                                .try_reserve(c.decoder_bytes())
                                .ok()
                                .flatten()
                                .ok_or_else(|| {
                                    Error::new(
                                        ErrorKind::BudgetFull,
                                        "no memory free to decode the origin's content coding; retry",
                                    )
                                })?,
                        )
                    };
                    decode = Some((c, held));
                    headers.remove(CONTENT_ENCODING);
                }
                // The client takes it as it is, or we cannot decode it.
                _ => return Ok(Recode::Unchanged),
            }
        }
    }

    let too_small = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len < MIN_COMPRESS_LEN);
    let mut encode = None;
    if compressible && (decode.is_some() || !too_small) {
        if let Some(c) = accept.preferred() {
            // HEAD holds nothing; a GET compresses only with room in the budget.
            let held = if head {
                None
            } else {
                budget.try_reserve(c.encoder_bytes()).ok().flatten()
            };
            if head || held.is_some() {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c.token()));
                encode = Some((c, held));
            }
        }
    }

    if decode.is_none() && encode.is_none() {
        return Ok(Recode::Unchanged);
    }
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    weaken_etag(headers);
    Ok(Recode::Transcode { decode, encode })
}

type Reader = Box<dyn AsyncBufRead + Send + Unpin>;
type Codec = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

fn decoder(c: Coding, r: Reader) -> Codec {
    match c {
        Coding::Br => Box::new(codec::BrotliDecoder::new(r)),
        Coding::Zstd => Box::new(codec::ZstdDecoder::with_params(
            r,
            &[
                async_compression::codecs::zstd::params::DParameter::window_log_max(
                    ZSTD_WINDOW_LOG_MAX,
                ),
            ],
        )),
        Coding::Gzip => Box::new(codec::GzipDecoder::new(r)),
        Coding::Deflate => Box::new(codec::ZlibDecoder::new(r)),
    }
}

fn encoder(c: Coding, r: Reader) -> Codec {
    match c {
        // Quality 4 is brotli's sweet spot for dynamic content: about gzip -6
        // speed with a better ratio. 11 (the default) is for static assets.
        Coding::Br => Box::new(codec::BrotliEncoder::with_quality(r, Level::Precise(4))),
        Coding::Zstd => Box::new(codec::ZstdEncoder::with_quality(r, Level::Precise(3))),
        Coding::Gzip => Box::new(codec::GzipEncoder::with_quality(r, Level::Precise(6))),
        Coding::Deflate => Box::new(codec::ZlibEncoder::with_quality(r, Level::Precise(6))),
    }
}

/// Run a body through a streaming codec, chunk by chunk. `held` is the
/// codec's reservation; it lives as long as the stream does.
fn transcode(body: Body, codec: impl FnOnce(Reader) -> Codec, held: Reservation) -> Body {
    let stream = BodyDataStream::new(body).map_err(move |e| {
        let _ = &held;
        io::Error::other(e)
    });
    let reader: Reader = Box::new(BufReader::with_capacity(
        body::CHUNK_SIZE,
        StreamReader::new(stream),
    ));
    body::from_reader(codec(reader), from_codec_error)
}

/// Errors coming out of a codec are either the wrapped body error (keep its
/// side) or the codec's own complaint about corrupt input from the origin.
fn from_codec_error(e: io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(original)) => *original,
        Some(Err(other)) => {
            Error::body_broken("origin sent a corrupt encoded body").with_cause(other)
        }
        None => Error::body_broken("origin sent a corrupt encoded body"),
    }
}

fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let already = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case("accept-encoding")
        });
    if !already {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if etag.starts_with("W/") {
        return;
    }
    if let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}")) {
        headers.insert(ETAG, weak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> AcceptEncoding {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        AcceptEncoding::from_headers(&h)
    }

    #[test]
    fn q_values_choose_the_coding() {
        assert_eq!(accept("gzip, br, zstd").preferred(), Some(Coding::Br));
        assert_eq!(accept("gzip;q=1, br;q=0.5").preferred(), Some(Coding::Gzip));
        assert_eq!(accept("br;q=0, gzip").preferred(), Some(Coding::Gzip));
        assert_eq!(accept("zstd, gzip;q=0.9").preferred(), Some(Coding::Zstd));
        assert_eq!(accept("identity").preferred(), None);
        assert_eq!(accept("*;q=0.5").preferred(), Some(Coding::Br));
        assert_eq!(accept("*, br;q=0").preferred(), Some(Coding::Zstd));
        assert_eq!(AcceptEncoding::default().preferred(), None);
        assert!(accept("x-gzip").accepts(Coding::Gzip));
        assert!(!accept("gzip").accepts(Coding::Br));
    }

    #[test]
    fn only_text_like_types_are_compressible() {
        assert!(is_compressible("image/svg+xml"));
        assert!(is_compressible("application/json; charset=utf-8"));
        assert!(is_compressible("text/css"));
        assert!(is_compressible("application/ld+json"));
        assert!(!is_compressible("image/jpeg"));
        assert!(!is_compressible("image/png"));
        assert!(!is_compressible("application/zip"));
    }
}
