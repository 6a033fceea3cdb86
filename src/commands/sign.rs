//! `sluice sign PATH`: print `/{signature}{PATH}`, signed with `--key` and
//! `--salt` as the server checks it (imgproxy's scheme).

use std::process::ExitCode;

use crate::config::SignArgs;
use crate::image::http::signature::Signer;

pub fn run(args: &SignArgs) -> ExitCode {
    let s = &args.signing;
    let signer = match Signer::new(&s.keys, &s.salts, s.signature_size) {
        Ok(signer) => signer,
        Err(e) => {
            eprintln!("sluice sign: {e}");
            return ExitCode::from(2);
        }
    };
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let signature = signer.sign(&path).unwrap_or_else(|| "insecure".to_string());
    println!("/{signature}{path}");
    ExitCode::SUCCESS
}
