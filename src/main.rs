//! The `sluice` binary: parse flags, start logging, run. All logic lives in
//! the library so that tests and benchmarks drive exactly the same code.

use std::process::ExitCode;

use clap::Parser;
use sluice::config::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Command::Serve(config)) => *config,
        Some(Command::Sign(args)) => return sluice::image::sign_command(&args),
        None => cli.config,
    };
    sluice::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sluice::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(2)
        }
    }
}
