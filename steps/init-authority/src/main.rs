//! `init-authority`: see `secops::steps::init_authority`.
fn main() -> std::process::ExitCode {
    secops::run::main("init-authority", secops::steps::init_authority)
}
