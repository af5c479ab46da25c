//! `kpatrol`: validate, run, render and apply tasks. Thin: [`kpatrol::cli::main`] parses,
//! runs, and maps the outcome to the exit code.

fn main() -> std::process::ExitCode {
    kpatrol::cli::main("kpatrol", kpatrol::cli::kpatrol)
}
