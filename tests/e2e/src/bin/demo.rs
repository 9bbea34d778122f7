//! `make demo`: the handover on this machine, end to end. Starts the loopback Kubernetes API
//! and Vault servers, seeds bootstrap Secrets, runs the three step binaries as processes (as
//! Argo would), prints the audit trail and the final state on both sides, and stops.

use e2e::{annotation, label, secret_bytes, Env, SeedSecret};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = Env::start().await;
    println!("== servers");
    println!(
        "   Kubernetes API  {} (kubeconfig {})",
        env.kube.url(),
        env.kubeconfig.display()
    );
    println!("   Vault           {}", env.vault.url());

    let seeds = [
        SeedSecret::bootstrap("payments", "postgres")
            .kv("username", "payments")
            .kv("password", "demo-password-1"),
        SeedSecret::bootstrap("payments", "tls")
            .typed("kubernetes.io/tls")
            .kv(
                "tls.crt",
                "-----BEGIN CERTIFICATE-----\n(demo)\n-----END CERTIFICATE-----\n",
            )
            .kv(
                "tls.key",
                "-----BEGIN PRIVATE KEY-----\n(demo)\n-----END PRIVATE KEY-----\n",
            ),
        SeedSecret::bootstrap("search", "api-key")
            .annotate("secops.io/vault-path", "search/external/api-key")
            .kv("key", [0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]),
        SeedSecret::bootstrap("search", "not-bootstrap")
            .unlabeled()
            .kv("x", "ignored"),
    ];
    println!(
        "\n== seeding {} Secrets (3 labeled secops.io/class=bootstrap)",
        seeds.len()
    );
    for s in &seeds {
        env.seed(s.clone()).await;
        println!("   {}/{} ({})", s.namespace, s.name, s.type_);
    }

    println!("\n== read-bootstrap --namespaces payments,search");
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "payments,search"])
        .run()
        .await;
    print!("{}", rb.stdout);
    println!(
        "   exit {}; references.json: {}",
        rb.code,
        rb.output("references.json")
    );

    for (i, r) in rb.references().iter().enumerate() {
        let mode = ["delete", "inert", "ignore"][i % 3];
        println!("\n== write-vault --reference '{r}'");
        let wv = env
            .step("write-vault")
            .args(["--reference".to_string(), r.to_string()])
            .run()
            .await;
        print!("{}", wv.stdout);
        println!(
            "   exit {}; vault-path={} vault-version={}",
            wv.code,
            wv.output("vault-path"),
            wv.output("vault-version")
        );
        println!("== mark-consumed --mode {mode}");
        let mc = env
            .step("mark-consumed")
            .args([
                "--reference".to_string(),
                r.to_string(),
                "--vault-version".into(),
                wv.output("vault-version").into(),
                "--mode".into(),
                mode.into(),
            ])
            .run()
            .await;
        print!("{}", mc.stdout);
        println!("   exit {}", mc.code);
    }

    println!("\n== re-running the whole chain (idempotent: nothing to do)");
    let again = env
        .step("read-bootstrap")
        .args(["--namespaces", "payments,search"])
        .run()
        .await;
    println!(
        "   read-bootstrap exit {}: {} references, skipped {}",
        again.code,
        again.references().len(),
        again.output("skipped.json")
    );

    println!("\n== final state: Kubernetes");
    for s in &seeds {
        match env.secret(&s.namespace, &s.name).await {
            None => println!("   {}/{}: deleted", s.namespace, s.name),
            Some(live) => println!(
                "   {}/{}: state={} vault-path={} keys={:?} (values {})",
                s.namespace,
                s.name,
                label(&live, "secops.io/state").unwrap_or("-"),
                annotation(&live, "secops.io/vault-path").unwrap_or("-"),
                secret_bytes(&live).keys().collect::<Vec<_>>(),
                if secret_bytes(&live) == s.bytes() {
                    "kept"
                } else {
                    "blanked"
                },
            ),
        }
    }
    println!("\n== final state: Vault (metadata only; values compared, not printed)");
    for (path, seed) in [
        ("payments/postgres", &seeds[0]),
        ("payments/tls", &seeds[1]),
        ("search/external/api-key", &seeds[2]),
    ] {
        let meta = env.vault_custom_metadata(path).await;
        let same = env.vault_bytes(path).await == seed.bytes();
        println!(
            "   secret/{path}: versions={} source={} workflow={} base64-keys={} bytes-identical={same}",
            env.vault_versions(path).await,
            meta.get("secops.io/source").map(String::as_str).unwrap_or("-"),
            meta.get("secops.io/workflow").map(String::as_str).unwrap_or("-"),
            meta.get("secops.io/base64-keys").map(String::as_str).unwrap_or("-"),
        );
    }
    println!("\n== Kubernetes Events (kubectl describe secret shows these)");
    for ns in ["payments", "search"] {
        for e in env.events(ns).await {
            println!(
                "   {}/{} {} {}: {}",
                ns,
                e.involved_object.name.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            );
        }
    }
    println!("\n== stopping the servers");
    env.kube.shutdown().await;
}
