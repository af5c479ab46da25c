//! The HTTP mode: one request per attempt with reqwest (HTTP/1.1 or HTTP/2, TLS by
//! rustls with the ring provider, mTLS, CA bundles), the status code as the answer, and
//! transport errors sorted into the engine's error kinds.

use std::error::Error as _;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{Mounts, read_file};
use crate::plan::{self, Body, Connections, HttpTarget, HttpVersion, Pressure};
use crate::pressure::{Attempt, ErrorKind, Outcome};

pub struct HttpAttempt {
    samples: crate::pressure::ErrorSamples,
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl Attempt for HttpAttempt {
    async fn attempt(&self) -> Outcome {
        let mut req = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(b) = &self.body {
            req = req.body(b.clone());
        }
        match req.send().await {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                loop {
                    match resp.chunk().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Outcome::Answered(status),
                        Err(e) => return self.failed(&e),
                    }
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        self.samples.all()
    }
}

impl HttpAttempt {
    fn failed(&self, e: &reqwest::Error) -> Outcome {
        let kind = classify(e);
        self.samples.note(kind, || error_text(e));
        Outcome::Failed(kind)
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

/// A target with its files read: what any HTTP client needs to send it.
pub struct Resolved {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    pub http2: bool,
    pub redirects: u32,
    /// Header values read from Secrets: error samples never show them.
    pub secrets: Vec<String>,
}

/// Reads header values from Secrets and the body from its file or ConfigMap.
pub fn resolve(t: &HttpTarget, mounts: &Mounts) -> Result<Resolved, String> {
    let url = reqwest::Url::parse(&t.url).map_err(|e| format!("invalid URL {}: {e}", t.url))?;
    let method = reqwest::Method::from_bytes(t.method.as_bytes()).map_err(|e| format!("method {}: {e}", t.method))?;
    let mut headers = HeaderMap::new();
    let mut secrets = Vec::new();
    for h in &t.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| format!("header {}: {e}", h.name))?;
        let value = match &h.value {
            plan::HeaderValue::Inline(v) => v.clone(),
            plan::HeaderValue::Secret { name: secret, key } => {
                let path = Mounts::key(&mounts.secret_dir(secret)?, key)?;
                let raw = read_file(&path, &format!("header {} from Secret {secret}", h.name))?;
                let v = String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\r']).to_string();
                secrets.push(v.clone());
                v
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| format!("header {} has an invalid value", h.name))?;
        if matches!(h.value, plan::HeaderValue::Secret { .. }) {
            value.set_sensitive(true);
        }
        headers.append(name, value);
    }
    let body = match &t.body {
        Body::None => None,
        Body::Inline(s) => Some(Bytes::from(s.clone())),
        Body::File(f) => Some(Bytes::from(read_file(&f.path, "body file")?)),
        Body::ConfigMapKey { name, key } => Some(Bytes::from(read_file(
            &Mounts::key(&mounts.configmap_dir(name)?, key)?,
            &format!("body from ConfigMap {name}"),
        )?)),
        Body::ConfigMapJson { name, .. } => Some(Bytes::from(configmap_json(&mounts.configmap_dir(name)?)?)),
    };
    Ok(Resolved {
        url,
        method,
        headers,
        body,
        http2: t.version == HttpVersion::Http2,
        redirects: t.redirects,
        secrets,
    })
}

impl HttpAttempt {
    /// Builds the client and request of one target. Errors name the file or setting at fault.
    pub fn build(t: &HttpTarget, r: Resolved, p: &Pressure, mounts: &Mounts) -> Result<Self, String> {
        let Resolved {
            mut url,
            method,
            headers,
            body,
            secrets,
            ..
        } = r;
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(p.timeout)
            .user_agent(concat!("kpatrol/", env!("CARGO_PKG_VERSION")))
            .redirect(if t.redirects == 0 {
                reqwest::redirect::Policy::none()
            } else {
                reqwest::redirect::Policy::limited(t.redirects as usize)
            })
            .pool_max_idle_per_host(match p.connections {
                Connections::Reuse => p.max_in_flight as usize,
                Connections::Fresh => 0,
            });
        b = match t.version {
            HttpVersion::Http1 => b.http1_only(),
            HttpVersion::Http2 => b.http2_prior_knowledge(),
            HttpVersion::Auto => b,
        };
        // Always our own TLS configuration (ring provider), even for http:// URLs that
        // redirect to https://, so nothing depends on a process-wide default provider.
        let tls = if url.scheme() == "https" {
            t.tls.clone()
        } else {
            plan::Tls::default()
        };
        b = b.tls_backend_preconfigured(client_tls(&tls, alpn(t.version), mounts)?);
        if url.scheme() == "https"
            && let Some(sni) = &t.tls.server_name
        {
            // Connect to the URL's address but name the server `sni` (TLS and Host).
            let ip: std::net::IpAddr = url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
                .ok_or_else(|| "tls.serverName needs an IP address in the URL".to_string())?;
            let port = url.port_or_known_default().unwrap_or(443);
            url.set_host(Some(sni))
                .map_err(|e| format!("tls.serverName {sni}: {e}"))?;
            b = b.resolve(sni, std::net::SocketAddr::new(ip, port));
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpAttempt {
            samples: crate::pressure::ErrorSamples::redacting(secrets),
            client,
            method,
            url,
            headers,
            body,
        })
    }
}

/// kdoctor's body: the JSON encoding of a ConfigMap's whole data map (files of the mounted directory).
fn configmap_json(dir: &std::path::Path) -> Result<Vec<u8>, String> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read body ConfigMap directory {}: {e}", dir.display()))?;
    let mut data = std::collections::BTreeMap::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") || !e.path().is_file() {
            continue;
        }
        let v = read_file(&e.path(), "body ConfigMap key")?;
        data.insert(name, String::from_utf8_lossy(&v).to_string());
    }
    serde_json::to_vec(&data).map_err(|e| e.to_string())
}

fn pem_certs(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
    let certs = certs.map_err(|e| format!("{what} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    Ok(certs)
}

/// The rustls configuration of one target (ring provider, ALPN from the HTTP version).
pub(crate) fn client_tls(tls: &plan::Tls, alpn: Vec<Vec<u8>>, mounts: &Mounts) -> Result<rustls::ClientConfig, String> {
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
        let dir = mounts.secret_dir(secret)?;
        if !dir.is_dir() {
            return Err(format!("TLS Secret {secret} is not mounted at {}", dir.display()));
        }
        let opt = |k: &str| -> Option<(Vec<u8>, String)> {
            let p = dir.join(k);
            std::fs::read(&p).ok().map(|b| (b, p.display().to_string()))
        };
        ca = opt("ca.crt");
        cert = opt("tls.crt");
        key = opt("tls.key");
        if cert.is_some() != key.is_some() {
            return Err(format!(
                "TLS Secret {secret} needs both tls.crt and tls.key for a client certificate"
            ));
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
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &ca {
            Some((pem, name)) => {
                for c in pem_certs(pem, &format!("CA {name}"))? {
                    roots.add(c).map_err(|e| format!("CA {name}: {e}"))?;
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
                .map_err(|e| format!("client key {kname} is not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {cname}: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn;
    Ok(cfg)
}

fn alpn(version: HttpVersion) -> Vec<Vec<u8>> {
    match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
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
