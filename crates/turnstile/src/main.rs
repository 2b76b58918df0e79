//! The `turnstile` binary: see [`cli`] for its commands.

mod cli;
mod pidfile;

fn main() -> std::process::ExitCode {
    cli::main()
}
