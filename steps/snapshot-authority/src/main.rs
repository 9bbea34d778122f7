//! `snapshot-authority`: see `secops::steps::snapshot_authority`.
fn main() -> std::process::ExitCode {
    secops::run::main("snapshot-authority", secops::steps::snapshot_authority)
}
