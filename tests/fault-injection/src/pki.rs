//! A throwaway test PKI: a fresh CA and a server certificate it signs, so a test server can
//! listen over real TLS (as Vault does with `tls_cert_file`/`tls_key_file`) and clients
//! are tested with `VAULT_CACERT`. Nothing here is ever shipped.

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// A server's certificate chain and private key, PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity { .. }")
    }
}

impl TlsIdentity {
    /// A rustls server configuration (ring, TLS 1.2 and 1.3, HTTP/1.1) for this identity.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("TLS certificate chain PEM")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).context("TLS key PEM")?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A CA (its certificate in `ca_pem`) and a server identity it signed.
#[derive(Clone, Debug)]
pub struct TestPki {
    pub ca_pem: String,
    pub server: TlsIdentity,
}

impl TestPki {
    /// A new CA named `ca_name` and a server certificate for `names` (DNS names or IP
    /// addresses, as subject alternative names).
    pub fn generate(ca_name: &str, names: &[&str]) -> anyhow::Result<Self> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut server = CertificateParams::new(names.clone())?;
        server.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = server.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            server: TlsIdentity {
                cert_chain_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }
}
