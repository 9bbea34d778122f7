//! Embeds the git revision for `--version` (SECOPS_GIT_REVISION overrides, e.g. in image builds).
fn main() {
    println!("cargo:rerun-if-env-changed=SECOPS_GIT_REVISION");
    let rev = std::env::var("SECOPS_GIT_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
        });
    println!(
        "cargo:rustc-env=SECOPS_GIT_REVISION={}",
        rev.unwrap_or_else(|| "unknown".into())
    );
}
