//! `audit-authority`: see `secops::steps::audit_authority`.
fn main() -> std::process::ExitCode {
    secops::run::main("audit-authority", secops::steps::audit_authority)
}
