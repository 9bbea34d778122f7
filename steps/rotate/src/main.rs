//! `rotate`: see `secops::steps::rotate`.
fn main() -> std::process::ExitCode {
    secops::run::main("rotate", secops::steps::rotate)
}
