//! What the modes' clients share: TLS settings from a task's `tls` (files beside the task
//! or a mounted Secret), the error kind of a reqwest error, and an error's causes as one line.

use std::error::Error as _;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{Mounts, SetupError, read_file};
use crate::plan;
use crate::pressure::ErrorKind;

/// The rustls configuration of one target (ring provider, ALPN from the HTTP version).
/// The folder of a mounted TLS Secret, or why it is not there.
pub(crate) fn tls_secret_dir(mounts: &Mounts, secret: &str) -> Result<std::path::PathBuf, SetupError> {
    let dir = mounts.secret_dir(secret)?;
    if !dir.is_dir() {
        return Err(SetupError::Tls(format!(
            "TLS Secret {secret} is not mounted at {}",
            dir.display()
        )));
    }
    Ok(dir)
}

/// A client with kpatrol's own settings (webpki roots, ring, HTTP/1.1), no proxy, every
/// request and connection bounded by `timeout`: for kpatrol's own calls (telemetry, the
/// mesh's control channel), not for targets.
pub(crate) fn own_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    // reqwest wants a TLS provider even for plain HTTP: the crate's one (ring)
    let tls = client_tls(
        &plan::Tls::default(),
        vec![b"http/1.1".to_vec()],
        &Mounts::new("/nonexistent"),
    )
    .map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn client_tls(
    tls: &plan::Tls,
    alpn: Vec<Vec<u8>>,
    mounts: &Mounts,
) -> Result<rustls::ClientConfig, SetupError> {
    let mut ca = None;
    let mut cert = None;
    let mut key = None;
    if let Some(f) = &tls.ca {
        ca = Some((read_file(&f.path, "CA file")?, f.path.display().to_string()));
    }
    if let (Some(c), Some(k)) = (&tls.cert, &tls.key) {
        cert = Some((read_file(&c.path, "client certificate")?, c.path.display().to_string()));
        key = Some((read_file(&k.path, "client key")?, k.path.display().to_string()));
    }
    if let Some(secret) = &tls.secret {
        let dir = tls_secret_dir(mounts, secret)?;
        let opt = |k: &str| -> Option<(Vec<u8>, String)> {
            let p = dir.join(k);
            std::fs::read(&p).ok().map(|b| (b, p.display().to_string()))
        };
        ca = opt("ca.crt");
        cert = opt("tls.crt");
        key = opt("tls.key");
        if cert.is_some() != key.is_some() {
            return Err(SetupError::Tls(format!(
                "TLS Secret {secret} needs both tls.crt and tls.key for a client certificate"
            )));
        }
    }
    let verify = if tls.insecure_skip_verify {
        false
    } else if tls.verify_only_with_ca {
        ca.is_some()
    } else {
        true
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(format!("TLS: {e}")))?;
    let builder = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &ca {
            Some((pem, name)) => {
                for c in pem_certs(pem, &format!("CA {name}"))? {
                    roots.add(c).map_err(|e| SetupError::Tls(format!("CA {name}: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    let mut cfg = match (cert, key) {
        (Some((c, cname)), Some((k, kname))) => {
            let chain = pem_certs(&c, &format!("client certificate {cname}"))?;
            let key = PrivateKeyDer::from_pem_slice(&k)
                .map_err(|e| SetupError::Tls(format!("client key {kname} is not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SetupError::Tls(format!("client certificate {cname}: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn;
    Ok(cfg)
}

fn pem_certs(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
    let certs = certs.map_err(|e| SetupError::Tls(format!("{what} is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(SetupError::Tls(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// Accepts any server certificate (only when the task asks, or kdoctor's rule says so),
/// still checking handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sorts a reqwest error into the engine's error kinds by walking its causes.
pub fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut text = String::new();
    while let Some(s) = src {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match super::io_kind(io) {
                ErrorKind::Other => {}
                kind => return kind,
            }
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return ErrorKind::Reset;
            }
            if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
                return ErrorKind::Protocol;
            }
        }
        text.push_str(&s.to_string());
        text.push(' ');
        src = s.source();
    }
    let t = text.to_ascii_lowercase();
    if t.contains("dns error") || t.contains("failed to lookup") || t.contains("name or service not known") {
        ErrorKind::Dns
    } else if [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "peer is incompatible",
        "alert",
    ]
    .iter()
    .any(|w| t.contains(w))
    {
        ErrorKind::Tls
    } else if t.contains("connection reset") || t.contains("connection closed") || t.contains("broken pipe") {
        ErrorKind::Reset
    } else if e.is_redirect()
        || e.is_decode()
        || t.contains("http2")
        || t.contains("h2 protocol")
        || t.contains("frame")
    {
        ErrorKind::Protocol
    } else {
        ErrorKind::Other
    }
}

/// An error and its causes, as one line.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}
