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
    std::panic::set_hook(Box::new(move |info| {
        crate::console::err(&panic_report(step, info.location()));
        std::process::exit(Exit::Internal.code().into());
    }));
    // Debug builds only: lets the end-to-end tests prove a panic's message is never printed.
    #[cfg(debug_assertions)]
    if let Some(m) = std::env::var_os("SECOPS_DEBUG_PANIC") {
        panic!("{}", m.to_string_lossy());
    }
    // One TLS provider for kube and Vault clients: ring, no C toolchain needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let vault_token = std::env::var("VAULT_TOKEN").ok().filter(|t| !t.is_empty());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::console::err(&format!(
                "{step}: error: cannot start the async runtime: {e}"
            ));
            return ExitCode::from(Exit::Internal.code());
        }
    };
    let exit = match rt.block_on(f(args, vault_token)) {
        Ok(exit) => exit,
        Err(e) => {
            crate::console::err(&format!("{step}: error: {e}"));
            e.exit()
        }
    };
    ExitCode::from(exit.code())
}

/// What a panic prints: where, never what. The payload could hold anything, a value
/// included; the exit code is the documented 1 (a bug), not the runtime's 101 or an abort.
fn panic_report(step: &str, at: Option<&std::panic::Location<'_>>) -> String {
    let at = at
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    format!(
        "{step}: error: internal error: the step panicked{at}; this is a bug, please report it \
         (the panic message is withheld: it could contain a secret value)"
    )
}

/// Human-readable logs on stderr (stdout carries only audit events). `SECOPS_LOG` sets the
/// filter, e.g. `debug`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECOPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::console::log_writer)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_report_names_the_place_only() {
        let here = std::panic::Location::caller();
        let r = super::panic_report("write-vault", Some(here));
        assert!(r.starts_with("write-vault: error: internal error"), "{r}");
        assert!(
            r.contains(&format!("{}:{}", here.file(), here.line())),
            "{r}"
        );
    }
}
