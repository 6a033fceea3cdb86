//! Configuration: the clap structs are the single source of truth.
//!
//! Every flag can also be set from the environment as `SLUICE_<FLAG>`
//! (upper case, dashes as underscores). `sluice --help` prints all of them,
//! and a test checks that docs/configuration.md's configuration reference lists every
//! flag that `--help` shows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::profiling::DebugToken;

mod image;
mod parse;
mod settings;

pub use image::{ImageFlags, SigningFlags};
pub use parse::{parse_duration, parse_size};
pub use settings::Settings;

/// sluice: a streaming reverse proxy for image origins.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default when no subcommand is given).
    Serve(Box<Config>),
    /// Exit 0 if a sluice endpoint answers 2xx, else 1 (for container health checks).
    Health(HealthArgs),
    /// Print PATH (options/source of a processing URL) with its signature
    /// prepended, as `/{signature}/{path}`.
    Sign(SignArgs),
}

/// Flags of `sluice health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The endpoint to GET (http:// only).
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,

    /// Give up (and exit 1) when no response has arrived after this long.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Flags of `sluice sign`.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The part of a processing URL after the signature, e.g. `/rs:fit:300/plain/a.jpg`.
    pub path: String,
    #[command(flatten)]
    pub signing: SigningFlags,
}

/// Everything the server needs to run.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address for client traffic.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The origin: an http(s)://host[:port][/base] URL, or a local directory.
    /// Without it, sluice serves its bundled `samples/` directory.
    #[arg(long, env = "SLUICE_ORIGIN")]
    pub origin: Option<String>,

    /// PEM file of extra CA certificates to trust for an https origin (an
    /// internal CA), on top of the system's roots.
    #[arg(long, env = "SLUICE_ORIGIN_CA_FILE")]
    pub origin_ca_file: Option<PathBuf>,

    /// PEM certificate chain (leaf first): the client listener speaks TLS
    /// (1.2 and 1.3; ALPN h2 and http/1.1). Needs --tls-key. Give several
    /// (repeat the flag, or separate with commas) to choose by the client's
    /// server name (SNI); the first is the default. Reloaded on SIGHUP and
    /// when a file changes.
    #[arg(
        long,
        env = "SLUICE_TLS_CERT",
        requires = "tls_key",
        value_delimiter = ','
    )]
    pub tls_cert: Vec<PathBuf>,

    /// PEM private key for each --tls-cert, in the same order (PKCS#8,
    /// PKCS#1 or SEC1).
    #[arg(
        long,
        env = "SLUICE_TLS_KEY",
        requires = "tls_cert",
        value_delimiter = ','
    )]
    pub tls_key: Vec<PathBuf>,

    /// Strict-Transport-Security value sent on every answer over TLS, e.g.
    /// "max-age=31536000; includeSubDomains". Off without it.
    #[arg(long, env = "SLUICE_HSTS", requires = "tls_cert")]
    pub hsts: Option<String>,

    /// A cleartext listener that answers every request with a 308 redirect
    /// to the same host and path over https.
    #[arg(long, env = "SLUICE_HTTPS_REDIRECT_LISTEN", requires = "tls_cert")]
    pub https_redirect_listen: Option<SocketAddr>,

    /// The port the redirect names (the one clients reach the TLS listener
    /// on, e.g. through a load balancer); 443 is left out of the URL.
    #[arg(long, env = "SLUICE_HTTPS_REDIRECT_PORT", default_value_t = 443)]
    pub https_redirect_port: u16,

    /// Time a client has from accept to a finished TLS handshake.
    #[arg(long, env = "SLUICE_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// How often the TLS certificate and key files are checked for a change.
    #[arg(long, env = "SLUICE_TLS_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,

    /// Address for the admin listener (metrics, profiling).
    #[arg(long, env = "SLUICE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Time allowed to open a TCP (and TLS) connection to the origin.
    #[arg(long, env = "SLUICE_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed from sending the request to receiving the origin's response headers.
    #[arg(long, env = "SLUICE_FIRST_BYTE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub first_byte_timeout: Duration,

    /// Longest pause allowed between two chunks of an origin body.
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once; a connection beyond it gets a
    /// 503 (Retry-After: 1) and is closed.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most client connections open at once from one IP address (0 = no
    /// limit); beyond it, 503 and close.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// Time a client connection has to send a complete request head, from
    /// accept (or, on a kept-alive connection, from its first byte); then it
    /// is closed.
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time an idle kept-alive client connection stays open between requests.
    #[arg(long, env = "SLUICE_KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// Time a client has to send a whole request body (a POST /zip manifest); then 408.
    #[arg(long, env = "SLUICE_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Slowest average rate, in bytes per second, at which a request body
    /// may arrive after its first 5 s (0 = no minimum); below it, 408.
    #[arg(long, env = "SLUICE_MIN_BODY_RATE", default_value = "8KiB", value_parser = parse_size)]
    pub min_body_rate: u64,

    /// Largest request line (method, target, version); longer ones get 414.
    #[arg(long, env = "SLUICE_MAX_REQUEST_LINE", default_value = "8KiB", value_parser = parse_size)]
    pub max_request_line: u64,

    /// Largest total of request header lines; more get 431.
    #[arg(long, env = "SLUICE_MAX_HEADER_BYTES", default_value = "32KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,

    /// Splice unchanged pass-through bodies from plain-http or directory
    /// origins to HTTP/1 clients in the kernel (zero-copy; Linux). `false`
    /// streams them through user space, e.g. under a seccomp policy that
    /// forbids splice(2).
    #[arg(long, env = "SLUICE_SPLICE", default_value_t = true, action = clap::ArgAction::Set)]
    pub splice: bool,

    /// On SIGTERM/SIGINT, how long in-flight responses may take to finish.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Bytes sluice may hold at once beyond streaming chunks (zip prefetch
    /// buffers, image buffers). Accepts KiB/MiB/GiB suffixes.
    #[arg(long, env = "SLUICE_MEMORY_BUDGET", default_value = "256MiB", value_parser = parse_size)]
    pub memory_budget: u64,

    /// Bearer token for the /debug/pprof endpoints on the admin listener
    /// (at least 16 characters). Without it those endpoints do not exist (404).
    #[arg(long, env = "SLUICE_DEBUG_TOKEN", hide_env_values = true, value_parser = DebugToken::parse)]
    pub debug_token: Option<DebugToken>,

    /// Zip: upcoming entries fetched at once per download (counting the one being written).
    #[arg(long, env = "SLUICE_ZIP_PREFETCH", default_value_t = 4)]
    pub zip_prefetch: usize,

    /// Zip: bytes buffered per prefetched entry, reserved from --memory-budget.
    #[arg(long, env = "SLUICE_ZIP_ENTRY_BUFFER", default_value = "128KiB", value_parser = parse_size)]
    pub zip_entry_buffer: u64,

    /// Zip: most entries in one manifest (422 beyond).
    #[arg(long, env = "SLUICE_ZIP_MAX_ENTRIES", default_value_t = 100_000)]
    pub zip_max_entries: usize,

    /// Zip: largest manifest, JSON or mod_zip (413 beyond).
    #[arg(long, env = "SLUICE_ZIP_MAX_MANIFEST_BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub zip_max_manifest_bytes: u64,

    /// Zip: largest archive (422 when declared sizes exceed it; a streaming
    /// archive that grows past it is aborted).
    #[arg(long, env = "SLUICE_ZIP_MAX_ARCHIVE_BYTES", default_value = "64GiB", value_parser = parse_size)]
    pub zip_max_archive_bytes: u64,
    #[command(flatten)]
    pub image: ImageFlags,

    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `./samples` when run from a checkout, else the samples beside the sources
/// this binary was built from.
pub fn default_samples_dir() -> PathBuf {
    let local = PathBuf::from("samples");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/samples"))
}
