//! The directory origin: serves files under one root with the semantics of
//! an HTTP origin (Content-Type, Content-Length, Last-Modified, ETag, Range,
//! 304, 404). No request reaches outside the root: `..` segments (also when
//! percent-encoded) are refused, and the resolved path, after following
//! symlinks, must still lie under the canonical root.

use std::ffi::OsStr;
use std::io::SeekFrom;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use http_body_util::BodyExt;

use super::spliced_file::SplicedFile;
use super::{OriginRequest, OriginResponse};
use crate::body::{self, Body};
use crate::conditional::{self, Decision, Validators};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::splice::ConnPipe;

#[derive(Clone)]
pub struct DirOrigin {
    root: Arc<PathBuf>,
}

impl DirOrigin {
    pub fn new(root: &Path) -> std::result::Result<Self, String> {
        let root = std::fs::canonicalize(root)
            .map_err(|e| format!("origin directory {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("origin {} is not a directory", root.display()));
        }
        Ok(DirOrigin {
            root: Arc::new(root),
        })
    }

    pub fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    pub async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse> {
        let answer = self.open(req).await?;
        Ok(response(
            answer.status,
            answer.headers,
            answer.body.map_or_else(body::empty, FileBody::streamed),
        ))
    }

    /// Status, headers and (for a GET with a body) the opened file range.
    pub async fn open(&self, req: OriginRequest) -> Result<FileAnswer> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "only GET and HEAD are served",
            ));
        }
        let path = self.resolve(&req.path_and_query).await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_error(e, "cannot open file"))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error(e, "cannot stat file"))?;
        if !meta.is_file() {
            return Err(Error::not_found("no such file").from_side(ErrorSource::Upstream));
        }
        let len = meta.len();
        let modified = meta.modified().ok();
        let mtime_secs = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        // The same shape as nginx's file ETag: hex mtime and hex length.
        let validators = Validators {
            etag: format!("\"{mtime_secs:x}-{len:x}\""),
            last_modified: modified,
            if_range_etag: None,
            if_range_modified: None,
        };

        let mut headers = HeaderMap::new();
        headers.insert(ETAG, header_value(&validators.etag));
        if let Some(m) = modified {
            headers.insert(LAST_MODIFIED, header_value(&httpdate::fmt_http_date(m)));
        }
        let decision = conditional::evaluate(&req.headers, &validators, len);
        if decision == Decision::NotModified {
            return Ok(answer(StatusCode::NOT_MODIFIED, headers, None));
        }
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        headers.insert(CONTENT_TYPE, header_value(mime.essence_str()));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));

        let (status, start, count) = match decision {
            Decision::Unsatisfiable => {
                headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{len}")));
                headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                return Ok(answer(StatusCode::RANGE_NOT_SATISFIABLE, headers, None));
            }
            Decision::Partial { start, end } => {
                headers.insert(
                    CONTENT_RANGE,
                    header_value(&format!("bytes {start}-{end}/{len}")),
                );
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            // `evaluate` answers several ranges with the whole file.
            Decision::Full | Decision::NotModified | Decision::Multipart(_) => {
                (StatusCode::OK, 0, len)
            }
        };
        headers.insert(CONTENT_LENGTH, HeaderValue::from(count));
        if req.method == Method::HEAD {
            return Ok(answer(status, headers, None));
        }
        let mut file = file;
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| io_error(e, "cannot seek file"))?;
        }
        Ok(answer(
            status,
            headers,
            Some(FileBody { file, start, count }),
        ))
    }

    /// Map a request path to a file under the root, or refuse it.
    async fn resolve(&self, path_and_query: &str) -> Result<PathBuf> {
        let raw_path = path_and_query.split('?').next().unwrap_or("");
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw_path).collect();
        if decoded.contains(&0) {
            return Err(Error::invalid_request("path contains a NUL byte"));
        }
        let mut relative = PathBuf::new();
        for segment in decoded.split(|b| *b == b'/') {
            match segment {
                b"" | b"." => continue,
                b".." => return Err(Error::forbidden("path escapes the origin directory")),
                s => relative.push(OsStr::from_bytes(s)),
            }
        }
        if relative.as_os_str().is_empty() {
            return Err(
                Error::not_found("no file at the origin root").from_side(ErrorSource::Upstream)
            );
        }
        let candidate = self.root.join(&relative);
        let canonical = tokio::fs::canonicalize(&candidate)
            .await
            .map_err(|e| io_error(e, "no such file"))?;
        if !canonical.starts_with(self.root.as_path()) {
            return Err(Error::forbidden("path escapes the origin directory"));
        }
        Ok(canonical)
    }
}

/// A directory origin's answer before its body is read.
pub struct FileAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Option<FileBody>,
}

/// `count` bytes of an open file from `start` (where it is positioned).
pub struct FileBody {
    file: tokio::fs::File,
    start: u64,
    count: u64,
}

impl FileBody {
    /// Read through user space in bounded chunks.
    pub fn streamed(self) -> Body {
        body::from_reader(self.file.take(self.count), |e| {
            Error::body_broken("file read failed").with_cause(e)
        })
    }

    /// Spliced from the page cache through the client connection's pipe
    /// (as sendfile would), or streamed when no pipe can be had.
    pub fn spliced_or_streamed(self, conn_pipe: &ConnPipe) -> Body {
        if self.count == 0 {
            return self.streamed();
        }
        let Some(pipe) = conn_pipe.open() else {
            return self.streamed();
        };
        match self.file.try_into_std() {
            Ok(file) => SplicedFile::new(file, self.start, self.count, pipe).boxed_unsync(),
            Err(file) => {
                // An operation is still in flight on it: read it instead,
                // and let the pipe go unused.
                pipe.finish();
                conn_pipe.release_if_idle();
                FileBody { file, ..self }.streamed()
            }
        }
    }
}

fn answer(status: StatusCode, headers: HeaderMap, body: Option<FileBody>) -> FileAnswer {
    FileAnswer {
        status,
        headers,
        body,
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> OriginResponse {
    OriginResponse {
        status,
        headers,
        body,
    }
}

fn header_value(s: &str) -> HeaderValue {
    // Only called with ASCII we generated ourselves (dates, numbers, mime types).
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn io_error(e: std::io::Error, reason: &'static str) -> Error {
    use std::io::ErrorKind as K;
    // A name longer than the file system allows cannot name a file: a
    // client must not be able to turn that into 5xx answers and log noise.
    if e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()) {
        return Error::not_found("no such file").from_side(ErrorSource::Upstream);
    }
    match e.kind() {
        K::NotFound | K::NotADirectory => {
            Error::not_found("no such file").from_side(ErrorSource::Upstream)
        }
        K::PermissionDenied => {
            Error::forbidden("file is not readable").from_side(ErrorSource::Upstream)
        }
        _ => Error::body_broken(reason).with_cause(e),
    }
}
