//! `make demo`: the handover on this machine, end to end. Starts the loopback Kubernetes API
//! (kube-server) and a real OpenBao, installs templates/vault, seeds bootstrap Secrets and submits
//! templates/workflows/secret-handover.yaml through the e2e Argo runner, so the step binaries
//! start exactly as the YAML wires them. Prints every node with its audit trail, then the
//! final state on both sides, and stops.

use e2e::argo::{install_vault_config, workflow_file, NodeKind, Runner, WorkflowRun};
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
    println!(
        "   Vault           {} (OpenBao {}, behind a TLS proxy)",
        env.vault.url(),
        env.vault.bao.url
    );

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

    install_vault_config(&env)
        .await
        .expect("Vault policies and roles");
    println!("\n== Vault: policies and Kubernetes auth roles installed from templates/vault");

    let runner = Runner::new(&env);
    let url = env.vault.url();
    for (namespaces, mode) in [("payments", "inert"), ("search", "delete")] {
        println!(
            "\n== argo submit --from workflowtemplate/secret-handover -p namespaces={namespaces} -p consume-mode={mode}"
        );
        let run = runner
            .submit(
                workflow_file("secret-handover.yaml"),
                &[
                    ("vault-addr", &url),
                    ("namespaces", namespaces),
                    ("consume-mode", mode),
                ],
            )
            .await
            .expect("submit secret-handover");
        print_run(&run);
    }

    println!("\n== submitting again over both namespaces (idempotent: nothing to do)");
    let again = runner
        .submit(
            workflow_file("secret-handover.yaml"),
            &[("vault-addr", &url), ("namespaces", "payments,search")],
        )
        .await
        .expect("submit secret-handover");
    print_run(&again);

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

/// Each node of a run: the step, its template, and for pods the exit codes (one per attempt),
/// the output parameters and the audit events the step printed.
fn print_run(run: &WorkflowRun) {
    println!("   workflow {} (uid {}): {}", run.name, run.uid, run.phase);
    for n in &run.nodes {
        let message = if n.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", n.message)
        };
        if n.kind != NodeKind::Pod {
            println!(
                "   - {} [{}] {}{message}",
                n.display_name, n.template, n.phase
            );
            continue;
        }
        println!(
            "   - {} [{}] {} exit {:?}{message}",
            n.display_name, n.template, n.phase, n.exit_codes
        );
        for (k, v) in &n.outputs {
            println!("       output {k} = {v}");
        }
        for line in n.stdout.lines() {
            println!("       audit {line}");
        }
    }
}
