//! `write-vault`: see `secops::steps::write_vault`.
fn main() -> std::process::ExitCode {
    secops::run::main("write-vault", secops::steps::write_vault)
}
