//! The one conversion from flags to the runtime structs each layer is
//! built from: nothing below the configuration layer sees a clap struct.

use crate::admin::profiling::DebugToken;
use crate::image::run::input::Limits;
use crate::image::run::pipeline::Defaults;
use crate::image::run::ProcessorSettings;
use crate::image::{ImageSettings, SigningSettings};
use crate::origin::{OriginSettings, OriginSpec, Timeouts};
use crate::server::{CertPair, HeadLimits, ServerSettings, TlsSettings};
use crate::upload::Pace;
use crate::zip::ZipSettings;

use super::{default_samples_dir, Config};

/// Everything sluice is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// The client listener's TLS (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsSettings>,
    pub origin: OriginSettings,
    pub zip: ZipSettings,
    pub image: ImageSettings,
    /// `--memory-budget`.
    pub memory_budget: u64,
    pub debug_token: Option<DebugToken>,
}

impl Config {
    /// `--tls-cert`/`--tls-key` pairs and the other `--tls-*` flags.
    fn tls_settings(&self) -> Result<Option<TlsSettings>, String> {
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(format!(
                "--tls-cert and --tls-key come in pairs: {} certificates, {} keys",
                self.tls_cert.len(),
                self.tls_key.len()
            ));
        }
        if self.tls_cert.is_empty() {
            return Ok(None);
        }
        let pairs = self
            .tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(cert, key)| CertPair {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        let hsts = self
            .hsts
            .as_deref()
            .map(http::HeaderValue::from_str)
            .transpose()
            .map_err(|_| "--hsts is not a valid header value".to_string())?;
        Ok(Some(TlsSettings {
            pairs,
            handshake_timeout: self.tls_handshake_timeout,
            reload_every: self.tls_reload_interval,
            hsts,
        }))
    }

    /// The runtime settings these flags describe; an error names the flag.
    pub fn settings(&self) -> Result<Settings, String> {
        let spec = match self.origin.as_deref() {
            Some(s) => OriginSpec::parse(s).map_err(|e| format!("--origin {e}"))?,
            None => OriginSpec::Dir(default_samples_dir()),
        };
        let i = &self.image;
        Ok(Settings {
            server: ServerSettings {
                listen: self.listen,
                admin_listen: self.admin_listen,
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                header_timeout: self.header_timeout,
                keepalive_timeout: self.keepalive_timeout,
                head: HeadLimits {
                    max_request_line: self.max_request_line,
                    max_header_bytes: self.max_header_bytes,
                },
                splice: self.splice,
                shutdown_grace: self.shutdown_grace,
                https_redirect: self
                    .https_redirect_listen
                    .map(|listen| (listen, self.https_redirect_port)),
            },
            tls: self.tls_settings()?,
            origin: OriginSettings {
                spec,
                timeouts: Timeouts {
                    connect: self.connect_timeout,
                    first_byte: self.first_byte_timeout,
                    idle: self.idle_timeout,
                },
                extra_ca: self.origin_ca_file.clone(),
            },
            zip: ZipSettings {
                prefetch: self.zip_prefetch,
                entry_buffer: self.zip_entry_buffer,
                max_entries: self.zip_max_entries,
                max_manifest_bytes: self.zip_max_manifest_bytes,
                max_archive_bytes: self.zip_max_archive_bytes,
                upload: Pace {
                    timeout: self.body_timeout,
                    min_rate: self.min_body_rate,
                },
            },
            image: ImageSettings {
                prefix: i.img_prefix.clone(),
                signing: i.signing.settings(),
                allowed_sources: i.allowed_sources.clone(),
                presets: i.presets.clone(),
                ttl: i.ttl,
                processor: ProcessorSettings {
                    workers: i.workers,
                    queue_size: i.queue_size,
                    timeout: i.processing_timeout,
                    limits: Limits {
                        max_src_pixels: i.max_src_pixels,
                        max_src_bytes: i.max_src_bytes,
                    },
                    defaults: Defaults {
                        quality: i.quality,
                        jpeg_progressive: i.jpeg_progressive,
                    },
                },
            },
            memory_budget: self.memory_budget,
            debug_token: self.debug_token.clone(),
        })
    }
}

impl super::SigningFlags {
    pub fn settings(&self) -> SigningSettings {
        SigningSettings {
            keys: self.keys.clone(),
            salts: self.salts.clone(),
            signature_size: self.signature_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::Cli;
    use super::*;

    #[test]
    fn flags_become_settings() {
        let cli = Cli::parse_from([
            "sluice",
            "--origin",
            "http://127.0.0.1:81/base",
            "--min-body-rate",
            "1KiB",
        ]);
        let s = cli.config.settings().unwrap();
        assert!(matches!(s.origin.spec, OriginSpec::Http(_)));
        assert_eq!(s.zip.upload.min_rate, 1024);
        let cli = Cli::parse_from(["sluice", "--origin", "ftp://x"]);
        assert!(cli.config.settings().unwrap_err().starts_with("--origin"));
        let cli = Cli::parse_from(["sluice"]);
        assert!(matches!(
            cli.config.settings().unwrap().origin.spec,
            OriginSpec::Dir(_)
        ));
    }
}
