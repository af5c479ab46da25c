//! `kpatrol-probe <mode>`: one round in one mode, as a pod runs it. Thin: [`kpatrol::cli::main`]
//! parses, runs, and maps the outcome to the exit code.

fn main() -> std::process::ExitCode {
    kpatrol::cli::main("kpatrol-probe", kpatrol::cli::probe)
}
