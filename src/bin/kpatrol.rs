//! `kpatrol`: validate and run tasks. Thin: parse, run, exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> anyhow::Result<ExitCode> {
    let cli = kpatrol::cli::Kpatrol::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let exit = rt.block_on(kpatrol::cli::kpatrol(cli));
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::from(exit as u8))
}
