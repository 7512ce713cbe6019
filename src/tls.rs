//! TLS: the server's certificate (the operator's, or a self-signed one generated on first start)
//! and the trust roots for outbound calls to identity authorities.

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Installs the one crypto provider (aws-lc-rs). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// The operator's certificate, or `tls-cert.pem` / `tls-key.pem` in the data directory, generated
/// once (for localhost, this host's name, 127.0.0.1 and ::1) and reused after.
pub fn certificate_files(data_dir: &Path, cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<CertificateFiles> {
    if let (Some(cert), Some(key)) = (cert, key) {
        return Ok(CertificateFiles { cert: cert.to_path_buf(), key: key.to_path_buf(), generated: false });
    }
    let cert = data_dir.join("tls-cert.pem");
    let key = data_dir.join("tls-key.pem");
    if cert.exists() && key.exists() {
        return Ok(CertificateFiles { cert, key, generated: false });
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(h) = host_name().filter(|h| h != "localhost") {
        names.push(h);
    }
    let certified = rcgen::generate_simple_self_signed(names).context("cannot generate a TLS certificate")?;
    crate::crypto::write_private_file(&key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, certified.cert.pem())?;
    Ok(CertificateFiles { cert, key, generated: true })
}

pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

pub fn server_config(files: &CertificateFiles) -> anyhow::Result<rustls::ServerConfig> {
    let certs = read_certs(&files.cert)?;
    let key_pem = std::fs::read(&files.key).with_context(|| format!("cannot read {}", files.key.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("{} is not a PEM private key", files.key.display()))?
        .with_context(|| format!("{} holds no private key", files.key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Public web roots plus `extra` (the operator's CA file, and our own certificate so that the
/// server can reach its sandbox provider over HTTPS like any authority).
pub fn client_config(extra: &[CertificateDer<'static>]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra {
        roots.add(cert.clone()).context("an extra root certificate is not usable")?;
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(Arc::new(roots)).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
