//! `push-secret`: see `secops::steps::push_secret`.
fn main() -> std::process::ExitCode {
    secops::run::main("push-secret", secops::steps::push_secret)
}
