//! The one `main` every step binary calls: parse flags, set up logging and TLS, run, and turn
//! the result into the documented exit code with one clear message on stderr.

use std::future::Future;
use std::process::ExitCode;

use crate::error::Result;
use crate::exit::Exit;

/// Runs a step. `F` gets the parsed flags and the VAULT_TOKEN environment value (read here,
/// at the edge, so nothing deeper touches the environment).
pub fn main<A, F, Fut>(step: &'static str, f: F) -> ExitCode
where
    A: clap::Parser,
    F: FnOnce(A, Option<String>) -> Fut,
    Fut: Future<Output = Result<Exit>>,
{
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version exit 0; every usage error exits 2, as documented.
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::Usage.code(),
            });
        }
    };
    init_logging();
    // One TLS provider for kube and Vault clients: ring, no C toolchain needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let vault_token = std::env::var("VAULT_TOKEN").ok().filter(|t| !t.is_empty());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{step}: error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Internal.code());
        }
    };
    let exit = match rt.block_on(f(args, vault_token)) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("{step}: error: {e}");
            e.exit()
        }
    };
    ExitCode::from(exit.code())
}

/// Human-readable logs on stderr (stdout carries only audit events). `SECOPS_LOG` sets the
/// filter, e.g. `debug`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECOPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
