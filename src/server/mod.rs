//! Listeners and connections: accept (bounded by `--max-connections`), serve
//! HTTP/1.1 and HTTP/2 with hyper, turn handler errors into short plain-text
//! responses, log one line per request, and drain on shutdown.
//!
//! See [`crate::shutdown`] for the shutdown sequence.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::access_log::RequestContext;
use crate::body::{self, Body, Counted};
use crate::budget::MemoryBudget;
use crate::config::Config;
use crate::error::{Error, Kind};
use crate::headers::X_REQUEST_ID;
use crate::origin::{Origin, Timeouts};
use crate::router::{self, AppState, Listener};
use crate::shutdown::Shutdown;
use crate::splice::ClientIo;

/// A bound, not yet running, sluice.
pub struct Server {
    client: TcpListener,
    admin: TcpListener,
    state: Arc<AppState>,
    max_connections: usize,
    grace: Duration,
}

impl Server {
    /// Build the origin and bind both listeners. Errors are start-up errors
    /// meant for a human (bad flag, port in use).
    pub async fn bind(config: &Config, shutdown: Shutdown) -> Result<Self, String> {
        let spec = config.origin_spec()?;
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            first_byte: config.first_byte_timeout,
            idle: config.idle_timeout,
        };
        let extra_ca = config.origin_ca_file.as_deref();
        let origin = Origin::new(&spec, timeouts, extra_ca)?;
        let image = Arc::new(crate::image::service::ImageService::new(
            &config.image,
            timeouts,
            extra_ca,
        )?);
        let client = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.admin_listen))?;
        tracing::info!(origin = %origin.describe(), "origin configured");
        raise_open_file_limit();
        Ok(Server {
            client,
            admin,
            state: Arc::new(AppState {
                config: config.clone(),
                origin,
                budget: MemoryBudget::new(config.memory_budget),
                shutdown,
                image,
            }),
            max_connections: config.max_connections.max(1),
            grace: config.shutdown_grace,
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
            tracing::info!(%addr, %admin, "listening");
        }
        let limit = Arc::new(Semaphore::new(self.max_connections));
        // The admin listener outlives the client one: while the client
        // listener drains, probes and scrapes still see `/readyz` = 503.
        let admin_stop = Shutdown::new();
        let client = async {
            serve_listener(
                self.client,
                Listener::Client,
                self.state.clone(),
                self.state.shutdown.clone(),
                limit,
                self.grace,
            )
            .await;
            admin_stop.trigger();
        };
        // Its own small limit: a flood of client connections never locks
        // operators out.
        let admin = serve_listener(
            self.admin,
            Listener::Admin,
            self.state.clone(),
            admin_stop.clone(),
            Arc::new(Semaphore::new(64)),
            Duration::from_secs(1),
        );
        tokio::join!(client, admin);
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

async fn serve_listener(
    listener: TcpListener,
    which: Listener,
    state: Arc<AppState>,
    shutdown: Shutdown,
    limit: Arc<Semaphore>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Cap hyper's per-connection buffer (read buffer and queued writes,
    // ~400 KiB by default) at one chunk: it bounds memory per stream.
    // Queued writes (writev) keep each body chunk a slice of its own, which
    // spliced bodies rely on (crate::splice); it is hyper's default for
    // sockets, made explicit here.
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(body::CHUNK_SIZE)
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let graceful = GracefulShutdown::new();

    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // semaphore closed: cannot happen, stop cleanly
            },
            _ = shutdown.wait() => break,
        };
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
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        // Pass-through bodies may be spliced into this connection; its
        // pipe travels with each request (crate::splice).
        let io = ClientIo::new(stream);
        let pipe = state.config.splice.then(|| io.pipe());
        let service = service_fn(move |mut req: Request<Incoming>| {
            if let Some(pipe) = &pipe {
                req.extensions_mut().insert(pipe.clone());
            }
            handle(state.clone(), which, req, peer)
        });
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
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

async fn handle(
    state: Arc<AppState>,
    which: Listener,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let mut ctx = RequestContext::new(
        req.headers(),
        req.method().clone(),
        req.uri().path().to_string(),
        peer.ip(),
    );
    let mut response = match router::route(state, which, req, &mut ctx).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &ctx),
    };
    response
        .headers_mut()
        .insert(X_REQUEST_ID, ctx.request_id.clone());
    let status = response.status();
    let request_id = ctx.request_id.clone();
    Ok(response.map(move |b| {
        let logged = b.map_err(move |e| {
            tracing::warn!(
                request_id = request_id.to_str().unwrap_or("-"),
                side = e.side.as_str(),
                error = %e,
                "response aborted mid-stream"
            );
            e
        });
        Counted::new(logged, move |bytes, outcome| {
            ctx.finish(status, bytes, outcome)
        })
        .boxed_unsync()
    }))
}

/// The short plain-text answer for an error that happened before the
/// response started. The cause goes to the log only.
fn error_response(e: &Error, ctx: &RequestContext) -> Response<Body> {
    let request_id = ctx.request_id.to_str().unwrap_or("-");
    if e.status().is_server_error() {
        tracing::warn!(request_id, side = e.side.as_str(), error = %e, "request failed");
    } else {
        tracing::debug!(request_id, side = e.side.as_str(), error = %e, "request refused");
    }
    let mut r = Response::new(body::full(format!("{}\n", e.reason)));
    *r.status_mut() = e.status();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.kind == Kind::MethodNotAllowed {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}
