//! libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` as a rustls client configuration.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use resee_ops_core::{ConnectionUrl, Error, ErrorKind, SslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The code of an error for a server certificate that was refused (unknown issuer, wrong host name,
/// expired).
pub const TLS_CERTIFICATE_REFUSED: &str = "TLS_CERTIFICATE_REFUSED";
/// The code of an error for a server that does not offer TLS while `sslmode` requires it.
pub const TLS_NOT_SUPPORTED: &str = "TLS_NOT_SUPPORTED";
/// The code of an error for another TLS failure the client detected (no common protocol version or
/// cipher, a malformed message).
pub const TLS_HANDSHAKE_FAILED: &str = "TLS_HANDSHAKE_FAILED";

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Where trusted roots come from, if anywhere: `sslrootcert` (a PEM file or `system`), else libpq's
/// default `~/.postgresql/root.crt` when it exists.
fn root_source(url: &ConnectionUrl) -> Option<String> {
    if let Some(root) = url.param("sslrootcert").filter(|r| !r.is_empty()) {
        return Some(root.to_owned());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let default = home.join(".postgresql").join("root.crt");
    default.is_file().then(|| default.to_string_lossy().into_owned())
}

fn load_roots(source: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if source == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(invalid("sslrootcert=system: the operating system's certificate store has no usable root"));
        }
        return Ok(roots);
    }
    let certs = read_certs(Path::new(source), "sslrootcert")?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(invalid(format!("sslrootcert {source}: no usable certificate in the file")));
    }
    Ok(roots)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{what} {}: not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("{what} {}: no certificate in the file", path.display())));
    }
    Ok(certs)
}

/// The rustls configuration for `url`'s `sslmode` (see the [crate docs](crate)).
pub(crate) fn client_config(url: &ConnectionUrl) -> Result<ClientConfig, Error> {
    let provider = provider();
    let mode = url.ssl_mode();
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_source(url)) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(invalid(format!(
                "sslmode={mode} needs the root certificate that signed the server's certificate: set sslrootcert to \
                 its PEM file (or sslrootcert=system for the operating system's store), or put it at \
                 ~/.postgresql/root.crt"
            )));
        }
        (SslMode::VerifyFull, Some(source)) => webpki(load_roots(&source)?, &provider)?,
        (SslMode::VerifyCa | SslMode::Require, Some(source)) => {
            Arc::new(AnyHostName { inner: webpki(load_roots(&source)?, &provider)? })
        }
        _ => Arc::new(NoVerification { algorithms: provider.signature_verification_algorithms }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (url.param("sslcert").filter(|c| !c.is_empty()), url.param("sslkey").filter(|k| !k.is_empty())) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certs(Path::new(cert), "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| invalid(format!("sslkey {key}: cannot read a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("sslcert/sslkey: the certificate and key do not fit together: {e}")))
        }
        _ => Err(invalid("sslcert and sslkey must be given together")),
    }
}

fn webpki(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, Error> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(format!("TLS setup: {e}")))
}

/// `sslmode=require` without a root certificate, `prefer`, `allow`: encryption without authentication of
/// the server, as libpq does. The handshake's signatures are still checked.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the host name is not checked. webpki checks
/// the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `e`'s chain (tokio-rustls wraps it in an `io::Error`).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) =
            err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref())
        {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// A typed error when the chain of `e` (any client's error: tokio-postgres, redis-rs) holds a rustls
/// error, `None` otherwise: a refused server certificate ([`TLS_CERTIFICATE_REFUSED`]) or another
/// handshake failure rustls detected ([`TLS_HANDSHAKE_FAILED`]); permanent [`ErrorKind::InvalidConfig`]
/// errors whose message says what to check (`mode` is the `sslmode` in force). The caller adds where it
/// connected.
pub fn rustls_refusal(e: &(dyn std::error::Error + 'static), mode: SslMode) -> Option<Error> {
    const NAME_HINT: &str = "the certificate does not name the host connected to (sslmode=verify-full checks it; \
                             connect by a name the certificate holds)";
    const ISSUER_HINT: &str = "it is not signed by a trusted root: check that sslrootcert names the CA that signed \
                               the server's certificate";
    const OTHER_HINT: &str = "check the server's certificate and sslrootcert";
    let (code, message) = match rustls_error(e) {
        Some(tls @ rustls::Error::InvalidCertificate(why)) => {
            let hint = match why {
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => NAME_HINT,
                CertificateError::UnknownIssuer | CertificateError::BadSignature => ISSUER_HINT,
                _ => OTHER_HINT,
            };
            (TLS_CERTIFICATE_REFUSED, format!("TLS: the server's certificate was refused ({tls}); {hint}"))
        }
        Some(other) => (TLS_HANDSHAKE_FAILED, format!("TLS handshake failed (sslmode={mode}): {other}")),
        None => {
            // Some clients (redis-rs) keep the rustls error where it cannot be downcast; its text is
            // rustls' own (English, client side), so it can be read.
            let text = super::with_causes(e);
            let detail = &text[text.find("invalid peer certificate")?..];
            let hint = if detail.contains("NotValidForName") || detail.contains("not valid for name") {
                NAME_HINT
            } else if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
                ISSUER_HINT
            } else {
                OTHER_HINT
            };
            (TLS_CERTIFICATE_REFUSED, format!("TLS: the server's certificate was refused ({detail}); {hint}"))
        }
    };
    Some(Error::new(ErrorKind::InvalidConfig, message).with_temporary(false).with_code(code))
}

/// A typed error when `e` is a TLS refusal, `None` otherwise: what [`rustls_refusal`] finds, or a server
/// without TLS while `url`'s `sslmode` requires it ([`TLS_NOT_SUPPORTED`]). All are permanent
/// [`ErrorKind::InvalidConfig`] errors: the certificate, the CA or the server's `ssl` setting must change
/// first. The message says what to check; the caller adds where it connected.
pub fn tls_error(e: &tokio_postgres::Error, url: &ConnectionUrl) -> Option<Error> {
    let mode = url.ssl_mode();
    if let Some(refusal) = e.source().and_then(|source| rustls_refusal(source, mode)) {
        return Some(refusal);
    }
    // tokio-postgres' own words (English, client side: not the server's lc_messages).
    if super::with_causes(e).contains("server does not support TLS") {
        return Some(
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "TLS: the server does not support TLS, but sslmode={mode} requires it (enable ssl on the server, \
                     or use sslmode=prefer to allow a plain connection)"
                ),
            )
            .with_temporary(false)
            .with_code(TLS_NOT_SUPPORTED),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ConnectionUrl {
        ConnectionUrl::parse(s).unwrap()
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        for mode in ["verify-ca", "verify-full"] {
            let u = url(&format!("postgres://u@db/app?sslmode={mode}&sslrootcert=/nonexistent/ca.pem"));
            let e = client_config(&u).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(e.message().contains("/nonexistent/ca.pem"), "{e}");
        }
        for mode in ["disable", "allow", "prefer", "require"] {
            assert!(client_config(&url(&format!("postgres://u@db/app?sslmode={mode}"))).is_ok(), "{mode}");
        }
        let e = client_config(&url("postgres://u@db/app?sslcert=/x.pem")).unwrap_err();
        assert!(e.message().contains("together"), "{e}");
    }
}
