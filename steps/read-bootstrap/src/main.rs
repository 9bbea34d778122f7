//! `read-bootstrap`: see `secops::steps::read_bootstrap`.
fn main() -> std::process::ExitCode {
    secops::run::main("read-bootstrap", secops::steps::read_bootstrap)
}
