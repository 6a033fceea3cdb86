//! TLS on the client listener (`--tls-cert`, `--tls-key`): rustls with its
//! safe defaults (TLS 1.2 and 1.3, ring), ALPN `h2` then `http/1.1`, a
//! handshake deadline, a clear answer to plain HTTP sent to the TLS port,
//! several certificates chosen by the client's server name (SNI; the
//! first pair is the default, as nginx's `default_server`), and
//! certificates reloaded without a restart.
//!
//! Reload: on SIGHUP, and when either file changes (polled every
//! [`TlsSettings::reload_every`], so that a Kubernetes Secret rotated by
//! cert-manager, which swaps a symlink, is picked up). A new chain and key
//! are used only if they parse, the key matches the certificate and the
//! certificate is within its validity period; otherwise the old pair stays
//! in use, with a log line and
//! `sluice_tls_certificate_reloads_total{outcome="refused"}`. Handshakes
//! already under way, and connections already open, keep the configuration
//! they started with (each takes an `Arc` of it).
//!
//! Spliced pass-through does not apply to TLS connections (the kernel
//! would send plaintext); their bodies stream through user space.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;

/// What `--tls-*` configure.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Certificate pairs, the first the default: PEM chain (leaf first) and
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub pairs: Vec<CertPair>,
    /// Time from accept to a finished handshake; then the connection closes.
    pub handshake_timeout: Duration,
    /// How often the files are checked for a change.
    pub reload_every: Duration,
    /// `--hsts`: Strict-Transport-Security on every answer.
    pub hsts: Option<http::HeaderValue>,
}

/// One certificate chain and its key, as files.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsSettings {
    fn files(&self) -> Vec<&Path> {
        self.pairs
            .iter()
            .flat_map(|p| [p.cert.as_path(), p.key.as_path()])
            .collect()
    }
}

/// The listener's TLS state: the configuration new handshakes use.
pub struct TlsTerminator {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// What the files looked like when `current` was loaded.
    loaded_from: RwLock<FilesSeen>,
}

/// A file's identity and version, as far as a poll can tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct FilesSeen(Vec<Option<(SystemTime, u64)>>);

impl FilesSeen {
    fn of(paths: &[&Path]) -> Self {
        FilesSeen(
            paths
                .iter()
                .map(|p| {
                    // metadata() follows symlinks: a swapped link shows as a
                    // new modification time and length of its target.
                    std::fs::metadata(p)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())))
                })
                .collect(),
        )
    }
}

impl TlsTerminator {
    /// Load the pair once; an error is a start-up error for a human.
    pub fn load(settings: TlsSettings) -> Result<Arc<Self>, String> {
        let seen = FilesSeen::of(&settings.files());
        let config = server_config(&settings.pairs)?;
        Ok(Arc::new(TlsTerminator {
            settings,
            current: RwLock::new(Arc::new(config)),
            loaded_from: RwLock::new(seen),
        }))
    }

    /// The Strict-Transport-Security value, when configured.
    pub fn hsts(&self) -> Option<&http::HeaderValue> {
        self.settings.hsts.as_ref()
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(config.clone())
    }

    /// Read the files again; keep the old pair if the new one is unusable.
    pub fn reload(&self, why: &'static str) {
        let seen = FilesSeen::of(&self.settings.files());
        match server_config(&self.settings.pairs) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
                crate::metrics::tls::reloaded("loaded");
                let pairs = self.settings.pairs.len();
                tracing::info!(why, pairs, "TLS certificate reloaded");
            }
            Err(e) => {
                crate::metrics::tls::reloaded("refused");
                tracing::warn!(why, error = %e, "new TLS certificate refused; the old one stays in use");
            }
        }
        // Either way this version of the files has been judged.
        *self.loaded_from.write().unwrap_or_else(|p| p.into_inner()) = seen;
    }

    /// Reload if the files differ from those last judged.
    fn reload_if_changed(&self) {
        let now = FilesSeen::of(&self.settings.files());
        let changed = *self.loaded_from.read().unwrap_or_else(|p| p.into_inner()) != now;
        if changed {
            self.reload("files changed");
        }
    }

    /// Reload on SIGHUP and when the files change, until shutdown. File
    /// reads and certificate parsing run on the blocking pool, off the
    /// threads that serve requests.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        let mut hangups = hangups();
        let mut tick = tokio::time::interval(self.settings.reload_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let this = self.clone();
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = next_hangup(&mut hangups) => {
                    let _ = tokio::task::spawn_blocking(move || this.reload("SIGHUP")).await;
                }
                _ = tick.tick() => {
                    let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
                }
            }
        }
    }

    /// Shake hands on an accepted connection within the deadline. A client
    /// that speaks plain HTTP gets a short 400 saying so, then a close (as
    /// nginx's 497); every failure is counted by reason and logged at
    /// debug, since scanners make them common.
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let deadline = self.settings.handshake_timeout;
        let shake = async {
            if looks_like_plain_http(&stream).await {
                answer_plain_http(stream).await;
                return Err(("plain_http", io::Error::other("plain HTTP on the TLS port")));
            }
            self.acceptor()
                .accept(stream)
                .await
                .map_err(|e| (failure_reason(&e), e))
        };
        let (reason, error) = match tokio::time::timeout(deadline, shake).await {
            Ok(Ok(tls)) => return Some(tls),
            Ok(Err(failure)) => failure,
            Err(_) => ("timeout", io::Error::from(io::ErrorKind::TimedOut)),
        };
        crate::metrics::tls::handshake_failed(reason);
        tracing::debug!(%peer, reason, %error, "TLS handshake failed");
        None
    }
}

/// The answer to plain HTTP on the TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\nthis port speaks HTTPS; use https://\n";

/// Whether the first bytes are an HTTP/1 request line rather than a TLS
/// record (which starts with 0x16).
async fn looks_like_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 4];
    let mut n = 0;
    // peek returns what has arrived; a request line's first four bytes
    // come in one segment in practice, but wait for them if not.
    for _ in 0..4 {
        match stream.peek(&mut first).await {
            Ok(got) if got >= 4 || got == 0 => {
                n = got;
                break;
            }
            Ok(got) => {
                n = got;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => return false,
        }
    }
    let methods: [&[u8; 4]; 9] = [
        b"GET ", b"HEAD", b"POST", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    n >= 4 && methods.contains(&&first)
}

/// Write the 400, then read what the client sent (up to 64 KiB, 1 s) before
/// closing, so that the close is a FIN the client reads the answer before,
/// not a reset that loses it.
async fn answer_plain_http(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    if stream.write_all(PLAIN_HTTP_ANSWER).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn failure_reason(e: &io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(_) => "protocol",
        None => "io",
    }
}

/// The rustls configuration for the pairs, ALPN `h2` then `http/1.1`.
/// Each key must match its certificate, and each certificate be valid now.
fn server_config(pairs: &[CertPair]) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let keys = pairs
        .iter()
        .map(|p| certified_key(p, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("--tls-cert: no certificate given".into());
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByServerName { keys }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn certified_key(
    pair: &CertPair,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = (&pair.cert, &pair.key);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificates found",
            cert.display()
        ));
    }
    check_validity(&chain, provider).map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    // from_der checks that the key matches the leaf certificate.
    CertifiedKey::from_der(chain, key_der, provider)
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "--tls-cert {} and --tls-key {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Chooses the pair whose leaf certificate is valid for the name the
/// client asked for (SNI), else the first pair (no name, or no match).
#[derive(Debug)]
struct ByServerName {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let first = self.keys.first()?;
        if self.keys.len() == 1 {
            return Some(first.clone());
        }
        let Some(name) = hello
            .server_name()
            .and_then(|n| rustls_pki_types::ServerName::try_from(n).ok())
        else {
            return Some(first.clone());
        };
        let matches = |key: &&Arc<CertifiedKey>| {
            key.cert.first().is_some_and(|leaf| {
                webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        };
        Some(self.keys.iter().find(matches).unwrap_or(first).clone())
    }
}

/// Refuse a leaf certificate outside its validity period (expired, or not
/// yet valid) now. Trust is the clients' business; only time is checked
/// here: webpki checks the leaf's validity before it looks for an issuer,
/// so the chain's last certificate serves as the anchor whatever it is.
fn check_validity(
    chain: &[CertificateDer<'static>],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), String> {
    let (Some(leaf_der), Some(last)) = (chain.first(), chain.last()) else {
        return Err("no certificates found".into());
    };
    let leaf = webpki::EndEntityCert::try_from(leaf_der)
        .map_err(|e| format!("not a usable certificate: {e}"))?;
    let anchors = [webpki::anchor_from_trusted_cert(last)
        .map_err(|e| format!("not a usable certificate: {e}"))?];
    let verdict = leaf.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &anchors,
        &chain[1..],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    let refusal = match verdict {
        Err(webpki::Error::CertExpired { .. }) => Some("the certificate has expired"),
        Err(webpki::Error::CertNotValidYet { .. }) => Some("the certificate is not valid yet"),
        _ => None,
    };
    refusal.map_or(Ok(()), |why| Err(why.to_string()))
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<std::convert::Infallible>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(hangups: &mut Hangups) {
    match hangups {
        #[cfg(unix)]
        Some(signal) => {
            signal.recv().await;
        }
        _ => std::future::pending::<()>().await,
    }
}
