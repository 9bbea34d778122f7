//! `unseal`: see `secops::steps::unseal`.
fn main() -> std::process::ExitCode {
    secops::run::main("unseal", secops::steps::unseal)
}
