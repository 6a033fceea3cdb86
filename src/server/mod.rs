//! Listeners and connections: accept (refusing what is over
//! `--max-connections` or `--max-connections-per-ip`, [`admission`]),
//! terminate TLS when configured ([`tls`]), keep each connection's
//! deadlines ([`clock`]), serve HTTP/1.1 and HTTP/2 with hyper, check
//! request heads ([`head`]), turn handler errors into short plain-text
//! responses, log one line per request, and drain on shutdown. An optional
//! cleartext listener only redirects to https ([`redirect`]).
//!
//! See [`crate::shutdown`] for the shutdown sequence.

mod admission;
mod clock;
mod head;
mod redirect;
pub mod router;
pub mod status;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use admission::Admission;
use clock::{ConnClock, Expiry, InRequest};
pub use head::HeadLimits;
pub use router::{Listener, Router};
pub use tls::{CertPair, TlsSettings, TlsTerminator};

use crate::body::{self, Body, Counted};
use crate::context::RequestContext;
use crate::error::{Error, ErrorKind};
use crate::headers::X_REQUEST_ID;
use crate::shutdown::Shutdown;
use crate::splice::{ClientIo, ConnPipe, NotifyReads};

/// How the server listens, and how client connections are limited and timed.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub head: HeadLimits,
    /// Splice unchanged pass-through bodies to HTTP/1 clients (`--splice`).
    pub splice: bool,
    /// How long in-flight responses may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// `--https-redirect-listen` and the port its redirects name.
    pub https_redirect: Option<(SocketAddr, u16)>,
}

/// What an HTTP/2 client may send on one stream, and on one connection,
/// before sluice reads it.
pub const H2_STREAM_WINDOW: u32 = 128 * 1024;
pub const H2_CONNECTION_WINDOW: u32 = 512 * 1024;

/// A bound, not yet running, sluice.
pub struct Server {
    client: TcpListener,
    admin: TcpListener,
    /// `--https-redirect-listen`, and the port its redirects name.
    redirect: Option<(TcpListener, u16)>,
    tls: Option<Arc<TlsTerminator>>,
    router: Arc<Router>,
    settings: ServerSettings,
    shutdown: Shutdown,
}

/// What one listener's connections share.
#[derive(Clone)]
struct ListenerState {
    which: Listener,
    router: Arc<Router>,
    settings: ServerSettings,
    /// The client listener's TLS, when configured.
    tls: Option<Arc<TlsTerminator>>,
}

impl Server {
    /// Bind both listeners. Errors are start-up errors meant for a human
    /// (a port in use).
    pub async fn bind(
        settings: ServerSettings,
        tls: Option<TlsSettings>,
        router: Router,
        shutdown: Shutdown,
    ) -> Result<Self, String> {
        let tls = tls.map(TlsTerminator::load).transpose()?;
        let redirect = match settings.https_redirect {
            Some((addr, port)) => Some((
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
                port,
            )),
            None => None,
        };
        let client = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let admin = TcpListener::bind(settings.admin_listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.admin_listen))?;
        raise_open_file_limit();
        Ok(Server {
            client,
            admin,
            redirect,
            tls,
            router: Arc::new(router),
            settings: ServerSettings {
                max_connections: settings.max_connections.max(1),
                ..settings
            },
            shutdown,
        })
    }

    pub fn client_addr(&self) -> std::io::Result<SocketAddr> {
        self.client.local_addr()
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serve until shutdown is triggered, then drain within the grace period.
    pub async fn run(self) {
        if let (Ok(addr), Ok(admin)) = (self.client_addr(), self.admin_addr()) {
            match self
                .redirect
                .as_ref()
                .and_then(|(l, _)| l.local_addr().ok())
            {
                Some(redirect) => tracing::info!(%addr, %admin, %redirect, "listening"),
                None => tracing::info!(%addr, %admin, "listening"),
            }
        }
        let settings = self.settings;
        // The admin listener outlives the client one: while the client
        // listener drains, probes and scrapes still see `/readyz` = 503.
        let admin_stop = Shutdown::new();
        let client_state = ListenerState {
            which: Listener::Client,
            router: self.router.clone(),
            settings,
            tls: self.tls.clone(),
        };
        if let Some(tls) = self.tls.clone() {
            tokio::spawn(tls.watch(self.shutdown.clone()));
        }
        let client = async {
            serve_listener(self.client, client_state, self.shutdown.clone()).await;
            admin_stop.trigger();
        };
        // Its own small limit and a short grace: a flood of client
        // connections never locks operators out.
        let admin_state = ListenerState {
            which: Listener::Admin,
            router: self.router.clone(),
            settings: ServerSettings {
                max_connections: 64,
                max_connections_per_ip: 0,
                shutdown_grace: Duration::from_secs(1),
                ..settings
            },
            tls: None,
        };
        let admin = serve_listener(self.admin, admin_state, admin_stop.clone());
        // The redirect listener drains with the client one.
        let redirect = async {
            if let Some((listener, _)) = self.redirect {
                let state = ListenerState {
                    which: Listener::HttpsRedirect,
                    router: self.router.clone(),
                    settings,
                    tls: None,
                };
                serve_listener(listener, state, self.shutdown.clone()).await;
            }
        };
        tokio::join!(client, admin, redirect);
        tracing::info!("shutdown complete");
    }
}

/// Raise the soft open-file limit to the hard one, as Go's runtime and
/// nginx's `worker_rlimit_nofile` do: a spliced stream holds four
/// descriptors (client, origin, a pipe's two ends), and shells often start
/// with a soft limit of 1024 under a much higher hard one.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let raised = limit.current;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::debug!(?raised, "raised the open-file limit"),
            Err(e) => tracing::debug!(error = %e, "could not raise the open-file limit"),
        }
    }
}

async fn serve_listener(listener: TcpListener, state: ListenerState, shutdown: Shutdown) {
    let settings = state.settings;
    let which = state.which;
    let grace = settings.shutdown_grace;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Cap hyper's per-connection buffer (read buffer and queued writes,
    // ~400 KiB by default) at one chunk: it bounds memory per stream. It
    // also bounds a request head, so it is at least the head limits (which
    // refuse with a log line; hyper's own refusal is only counted below).
    // Queued writes (writev) keep each body chunk a slice of its own, which
    // spliced bodies rely on (crate::splice); it is hyper's default for
    // sockets, made explicit here. hyper's own head timer is off: its
    // start (first byte, or end of the last response) differs from ours,
    // and two clocks racing made idle closes look like head timeouts. The
    // connection's clock (clock.rs) is the one authority.
    let head_bytes = settings.head.max_request_line + settings.head.max_header_bytes + 1024;
    let max_buf = body::CHUNK_SIZE.max(usize::try_from(head_bytes).unwrap_or(usize::MAX));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(max_buf)
        .writev(true);
    // HTTP/2 (over TLS, or h2c): each stream's queue of unsent body bytes
    // is held to one chunk as HTTP/1's is (hyper's default is 400 KiB per
    // stream), and what a client may send ahead of our reads (its flow
    // control windows) to 128 KiB per stream and 512 KiB per connection,
    // so that memory per stream is what crate::memory_model says.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .max_send_buf_size(body::CHUNK_SIZE)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    let graceful = GracefulShutdown::new();
    let admission = Admission::new(settings.max_connections, settings.max_connections_per_ip);

    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(why) => {
                admission.refuse(stream, peer.ip(), why);
                continue;
            }
        };
        let open = crate::metrics::conn::opened();
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            state: state.clone(),
            peer,
            held: (admitted, open),
        };
        match state.tls.clone() {
            None => {
                let clock = ConnClock::start(settings.header_timeout, settings.keepalive_timeout);
                // Pass-through bodies may be spliced into this connection;
                // its pipe travels with each request (crate::splice).
                let reads = clock.clone();
                let io = ClientIo::new(stream, Arc::new(move || reads.bytes_read()));
                let pipe = settings.splice.then(|| io.pipe());
                tokio::spawn(conn.serve(TokioIo::new(io), clock, pipe));
            }
            Some(tls) => {
                tokio::spawn(async move {
                    // The connection's clock starts once the handshake is
                    // done (the handshake has its own deadline).
                    let Some(io) = tls.accept(stream, peer).await else {
                        return;
                    };
                    let clock =
                        ConnClock::start(settings.header_timeout, settings.keepalive_timeout);
                    let reads = clock.clone();
                    let io = NotifyReads::new(io, Arc::new(move || reads.bytes_read()));
                    conn.serve(TokioIo::new(io), clock, None).await;
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?which,
            ?grace,
            "grace period over; closing remaining connections"
        );
    }
}

/// One accepted connection, ready to be served once its transport is.
struct Conn {
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    state: ListenerState,
    peer: SocketAddr,
    /// Released when the connection ends: its admission and its count.
    held: (admission::Admitted, crate::metrics::conn::Open),
}

impl Conn {
    /// Serve HTTP/1.1 or HTTP/2 on `io` until it closes, its clock expires
    /// or the drain ends it. `pipe` is offered to requests whose bodies may
    /// be spliced (cleartext only).
    async fn serve<I>(self, io: I, clock: Arc<ConnClock>, pipe: Option<ConnPipe>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Conn {
            builder,
            watcher,
            state,
            peer,
            held,
        } = self;
        let settings = state.settings;
        let requests = clock.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let in_request = requests.request_started(req.version());
            if let Some(pipe) = &pipe {
                req.extensions_mut().insert(pipe.clone());
            }
            handle(state.clone(), req, peer, in_request)
        });
        let conn = watcher.watch(builder.serve_connection(io, service).into_owned());
        // Pinned out here, so that a connection closed by its clock is
        // counted and logged before the socket closes (select! drops
        // the futures it owns before running a branch).
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    log_connection_error(&*e, peer);
                }
            }
            why = clock.expired() => {
                crate::metrics::conn::closed(why.as_str());
                match why {
                    Expiry::HeaderTimeout => tracing::info!(
                        %peer,
                        timeout = ?settings.header_timeout,
                        "connection closed: no complete request head in time (--header-timeout)"
                    ),
                    Expiry::KeepaliveTimeout => tracing::debug!(%peer, "idle connection closed"),
                }
            }
        }
        drop(held);
    }
}

/// A connection ended with an error. Heads that hyper refused itself
/// (it answered 431 or 400) get a log line and a count; the rest (resets,
/// clients gone) only a debug line.
fn log_connection_error(e: &(dyn std::error::Error + Send + Sync + 'static), peer: SocketAddr) {
    let refused = e.downcast_ref::<hyper::Error>().and_then(|h| {
        if h.is_parse_too_large() {
            Some((
                "head_too_large",
                "request head too large: answered 431 and closed",
            ))
        } else if h.is_parse() {
            Some((
                "malformed_head",
                "malformed request head: answered 400 and closed",
            ))
        } else {
            None
        }
    });
    match refused {
        Some((reason, message)) => {
            crate::metrics::conn::closed(reason);
            tracing::info!(%peer, error = %e, "{message}");
        }
        None => tracing::debug!(%peer, error = %e, "connection ended with an error"),
    }
}

async fn handle(
    state: ListenerState,
    req: Request<Incoming>,
    peer: SocketAddr,
    in_request: InRequest,
) -> Result<Response<Body>, Infallible> {
    let mut ctx = RequestContext::new(
        req.headers(),
        req.method().clone(),
        req.uri().path().to_string(),
        peer.ip(),
    );
    // A request body that an error leaves unread cannot be skipped
    // safely: the connection closes after the answer.
    let unread_body = req.version() <= http::Version::HTTP_11
        && (req.headers().contains_key(http::header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0"));
    let routed = match head::check(&req, state.settings.head) {
        Ok(()) if state.which == Listener::HttpsRedirect => {
            ctx.route = crate::metrics::http::Route::HttpsRedirect;
            let port = state.settings.https_redirect.map_or(443, |(_, port)| port);
            redirect::answer(&req, port)
        }
        Ok(()) => state.router.route(state.which, req, &mut ctx).await,
        Err(e) => Err(e),
    };
    let mut response = match routed {
        Ok(r) => r,
        Err(e) => {
            let mut r = error_response(&e, &ctx);
            if unread_body {
                r.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
    };
    response
        .headers_mut()
        .insert(X_REQUEST_ID, ctx.request_id.clone());
    if let Some(hsts) = state.tls.as_ref().and_then(|t| t.hsts()) {
        response
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    let status = response.status();
    let request_id = ctx.request_id.clone();
    Ok(response.map(move |b| {
        let logged = b.map_err(move |e| {
            tracing::warn!(
                request_id = request_id.to_str().unwrap_or("-"),
                side = e.source.as_str(),
                error = %e,
                "response aborted mid-stream"
            );
            e
        });
        Counted::new(logged, move |bytes, outcome| {
            ctx.finish(status, bytes, outcome);
            drop(in_request);
        })
        .boxed_unsync()
    }))
}

/// The short plain-text answer for an error that happened before the
/// response started. The cause goes to the log only.
fn error_response(e: &Error, ctx: &RequestContext) -> Response<Body> {
    let request_id = ctx.request_id.to_str().unwrap_or("-");
    let status = status::of(e);
    if status.is_server_error() {
        tracing::warn!(request_id, side = e.source.as_str(), error = %e, "request failed");
    } else if e.kind.is_client_limit() {
        tracing::info!(
            request_id,
            status = status.as_u16(),
            client = %ctx.client_ip,
            error = %e,
            "request refused by a limit"
        );
    } else {
        tracing::debug!(request_id, side = e.source.as_str(), error = %e, "request refused");
    }
    let mut r = Response::new(body::full(format!("{}\n", e.reason)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.kind == ErrorKind::MethodNotAllowed {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if matches!(
        e.kind,
        ErrorKind::BudgetFull | ErrorKind::QueueFull | ErrorKind::ProcessingTimeout
    ) {
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}
