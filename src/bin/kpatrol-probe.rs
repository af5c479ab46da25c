//! `kpatrol-probe <mode>`: one round in one mode, as a pod runs it. Thin: parse, run, and the one mapping of
//! outcomes to exit codes (0 pass, 1 fail, 2 could not run), panics included.

use std::process::ExitCode;

use clap::Parser;
use kpatrol::cli::Exit;

fn main() -> ExitCode {
    kpatrol::cli::install_panic_hook("kpatrol-probe");
    let cli = kpatrol::cli::Probe::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exit = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => {
            let exit = rt.block_on(kpatrol::cli::probe(cli));
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            exit
        }
        Err(e) => {
            eprintln!("kpatrol-probe: cannot start the async runtime: {e}");
            Exit::Trouble
        }
    };
    ExitCode::from(exit as u8)
}
