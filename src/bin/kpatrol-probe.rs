//! `kpatrol-probe <mode>`: one round in one mode, as a pod runs it. Thin: parse, run, exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> anyhow::Result<ExitCode> {
    let cli = kpatrol::cli::Probe::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let exit = rt.block_on(kpatrol::cli::probe(cli));
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::from(exit as u8))
}
