//! `mark-consumed`: see `secops::steps::mark_consumed`.
fn main() -> std::process::ExitCode {
    secops::run::main("mark-consumed", secops::steps::mark_consumed)
}
