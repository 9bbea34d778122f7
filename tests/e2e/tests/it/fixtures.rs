//! Bootstrap Secrets of every type the handover must carry byte for byte.

use e2e::SeedSecret;

/// A PEM-looking certificate and key (test data, not a real key).
pub const TLS_CRT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2FuYXJ5LXRlc3QtY2VydDAKBggqhkjOPQQDAjAAMB4X\n-----END CERTIFICATE-----\n";
pub const TLS_KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBc2VjcmV0LXRlc3Qta2V5LW5vdC1yZWFsAAAAAAAAAAAAAAAAoAoGCCqG\n-----END EC PRIVATE KEY-----\n";

pub fn binary_blob() -> Vec<u8> {
    // Every byte value, including invalid UTF-8 sequences and NUL.
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend_from_slice(&[0xc3, 0x28, 0xff, 0xfe, 0x00, 0x80]);
    v
}

/// One Secret of each supported type plus binary and many-key ones, in `ns`.
pub fn all_types(ns: &str) -> Vec<SeedSecret> {
    let mut many = SeedSecret::bootstrap(ns, "many-keys");
    for i in 0..60 {
        many = many.kv(
            &format!("key-{i:02}"),
            format!("value-{i}-\u{1F512}-ünïcødé"),
        );
    }
    vec![
        SeedSecret::bootstrap(ns, "opaque")
            .kv("username", "admin")
            .kv("password", "p@ss w0rd\n\t\"quoted\" \\ back")
            .kv("empty", ""),
        SeedSecret::bootstrap(ns, "tls")
            .typed("kubernetes.io/tls")
            .kv("tls.crt", TLS_CRT)
            .kv("tls.key", TLS_KEY)
            .kv("ca.crt", TLS_CRT),
        SeedSecret::bootstrap(ns, "registry")
            .typed("kubernetes.io/dockerconfigjson")
            .kv(
                ".dockerconfigjson",
                r#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}"#,
            ),
        SeedSecret::bootstrap(ns, "legacy-registry")
            .typed("kubernetes.io/dockercfg")
            .kv(
                ".dockercfg",
                r#"{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}"#,
            ),
        SeedSecret::bootstrap(ns, "basic")
            .typed("kubernetes.io/basic-auth")
            .kv("username", "svc")
            .kv("password", "s3cr3t"),
        SeedSecret::bootstrap(ns, "ssh")
            .typed("kubernetes.io/ssh-auth")
            .kv("ssh-privatekey", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
        SeedSecret::bootstrap(ns, "binary")
            .kv("blob", binary_blob())
            .kv("text", "plain")
            .kv("nul", [0u8, 0, 0]),
        many,
    ]
}
