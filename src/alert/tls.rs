//! The TLS client side shared by the HTTP and SMTP sinks: rustls with the ring provider,
//! trusting the system's CA bundle plus an optional per-sink PEM file (a private CA).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_rustls::TlsConnector;

/// Debian's bundle of the system trust store.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        if roots.add(c).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// A connector trusting the system roots and `ca_file`.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    let system = add_pem(&mut roots, Path::new(SYSTEM_BUNDLE)).unwrap_or(0);
    let extra = match ca_file {
        Some(p) => add_pem(&mut roots, p)?,
        None => 0,
    };
    if system + extra == 0 {
        return Err(format!(
            "no trusted CA certificates (install ca-certificates for {SYSTEM_BUNDLE}, or set ca_file)"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// The server name to verify, from a host name or address.
pub(crate) fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(h.to_string())
        .map_err(|_| format!("{host:?} is not a valid TLS server name"))
}
