//! TLS for the registry client: the system roots plus
//! `/etc/containers/certs.d/HOST[:PORT]/*.crt` (under the
//! [`Root`](crate::paths::Root)), client certificates from `*.cert`/`*.key`
//! pairs there, and the verifier that accepts anything for `tls_verify =
//! false`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::SourceError;
use crate::paths::Root;

/// Where extra CAs and client certificates for a registry live.
pub const CERTS_D: &str = "/etc/containers/certs.d";

fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| match rustls_native_certs::load_native_certs() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("loading the system's CA certificates: {e}");
            Vec::new()
        }
    })
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration for `registry` (`HOST[:PORT]`): system roots
/// plus `certs.d/HOST[:PORT]/*.crt`, and a client certificate from a
/// `*.cert`/`*.key` pair there. With `verify = false`, any server
/// certificate is accepted.
pub fn tls_config(
    root: &Root,
    registry: &str,
    verify: bool,
) -> Result<Arc<rustls::ClientConfig>, SourceError> {
    let tls_err = |reason: String| SourceError::Tls {
        host: registry.to_string(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let dir = root.join(CERTS_D).join(registry);
    let mut entries: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(SourceError::File {
                what: "reading registry certificate directory",
                path: dir,
                source: e,
            })
        }
    };
    entries.sort();
    let with_ext = |ext: &str| -> Vec<&std::path::PathBuf> {
        entries
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect()
    };

    let builder = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(native_roots().iter().cloned());
        for p in with_ext("crt") {
            let certs = read_certs(p)?;
            if certs.is_empty() {
                return Err(tls_err(format!("{} holds no PEM certificate", p.display())));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("CA certificate {}: {e}", p.display())))?;
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };

    let client_cert = with_ext("cert").into_iter().find_map(|c| {
        let key = c.with_extension("key");
        key.exists().then(|| (c.clone(), key))
    });
    let config = match client_cert {
        Some((cert, key)) => {
            let certs = read_certs(&cert)?;
            let raw = std::fs::read(&key).map_err(|e| SourceError::File {
                what: "reading client key",
                path: key.clone(),
                source: e,
            })?;
            let k = rustls_pemfile::private_key(&mut &raw[..])
                .ok()
                .flatten()
                .ok_or_else(|| tls_err(format!("{} holds no PEM private key", key.display())))?;
            builder
                .with_client_auth_cert(certs, k)
                .map_err(|e| tls_err(format!("client certificate {}: {e}", cert.display())))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, SourceError> {
    let raw = std::fs::read(p).map_err(|e| SourceError::File {
        what: "reading certificate",
        path: p.to_path_buf(),
        source: e,
    })?;
    rustls_pemfile::certs(&mut &raw[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SourceError::File {
            what: "parsing PEM certificate",
            path: p.to_path_buf(),
            source: e,
        })
}
