//! A kubeconfig pointing at the server, so step binaries are configured exactly as in a
//! cluster: through a file, with a bearer-token user (the token is checked only by
//! TokenReview, see `front`).

use std::net::SocketAddr;
use std::path::Path;

/// The bearer token the written kubeconfig's user carries.
pub const TOKEN: &str = "kube-server-test-token";

/// Renders the kubeconfig YAML. Strings are JSON-quoted, which is valid YAML.
pub fn render(addr: SocketAddr, namespace: &str) -> String {
    render_as(addr, namespace, TOKEN)
}

/// The same, for a caller identified by `token` (recorded with each request).
pub fn render_as(addr: SocketAddr, namespace: &str, token: &str) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-server
  cluster:
    server: {server}
contexts:
- name: kube-server
  context:
    cluster: kube-server
    user: step
    namespace: {namespace}
current-context: kube-server
users:
- name: step
  user:
    token: {token}
preferences: {{}}
",
        server = q(&format!("http://{addr}")),
        namespace = q(namespace),
        token = q(token),
    )
}

pub fn write(path: &Path, addr: SocketAddr, namespace: &str) -> std::io::Result<()> {
    std::fs::write(path, render(addr, namespace))
}

pub fn write_as(
    path: &Path,
    addr: SocketAddr,
    namespace: &str,
    token: &str,
) -> std::io::Result<()> {
    std::fs::write(path, render_as(addr, namespace, token))
}

#[cfg(test)]
mod tests {
    #[test]
    fn kube_parses_it() {
        let addr = "127.0.0.1:8080".parse().expect("addr");
        let text = super::render(addr, "team-a");
        let kc = kube::config::Kubeconfig::from_yaml(&text).expect("kubeconfig parses");
        assert_eq!(kc.current_context.as_deref(), Some("kube-server"));
        let cluster = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone());
        assert_eq!(cluster.as_deref(), Some("http://127.0.0.1:8080"));
        let ctx = kc.contexts[0]
            .context
            .as_ref()
            .and_then(|c| c.namespace.clone());
        assert_eq!(ctx.as_deref(), Some("team-a"));
    }
}
