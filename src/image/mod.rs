//! Recompression: imgproxy-compatible processing URLs (issue 4).
//!
//! origin ▶ bounded compressed input ▶ worker pool (probe ▶ decode ▶ resize
//! ▶ encode) ▶ client. Every buffer is reserved from the one memory budget
//! before it exists.

pub mod config;
pub mod options;
pub mod signature;
pub mod url;

/// `sluice sign PATH`: print `/{signature}{PATH}`.
pub fn sign_command(args: &crate::config::SignArgs) -> std::process::ExitCode {
    let s = &args.signing;
    let signer = match signature::Signer::new(&s.keys, &s.salts, s.signature_size) {
        Ok(signer) => signer,
        Err(e) => {
            eprintln!("sluice sign: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let signature = signer.sign(&path).unwrap_or_else(|| "insecure".to_string());
    println!("/{signature}{path}");
    std::process::ExitCode::SUCCESS
}
pub mod coalesce;
pub mod decode;
pub mod encode;
pub mod estimate;
pub mod etag;
pub mod geometry;
pub mod input;
pub mod libjpeg;
pub mod pipeline;
pub mod probe;
pub mod resize;
pub mod service;
pub mod variants;
pub mod webp_lossy;
pub mod worker_arena;
pub mod workers;
