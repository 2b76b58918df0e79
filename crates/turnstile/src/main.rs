//! The `turnstile` binary: see [`cli`] for its commands.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
