//! The HTTP mode: one request per attempt with reqwest (HTTP/1.1 or HTTP/2, TLS by
//! rustls with the ring provider, mTLS, CA bundles), the status code as the answer, and
//! transport errors sorted into the engine's error kinds.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::plan::{Body, HeaderValue as PlanHeaderValue, HttpTarget, HttpVersion};
use crate::plan::{Connections, Pressure};
use crate::pressure::{Attempt, ErrorKind, Outcome};
use crate::probe::client::{classify, client_tls, error_text};
use crate::probe::{Mounts, SetupError, read_file};

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
pub fn resolve(t: &HttpTarget, mounts: &Mounts) -> Result<Resolved, SetupError> {
    let url = reqwest::Url::parse(&t.url).map_err(|e| SetupError::Invalid(format!("invalid URL {}: {e}", t.url)))?;
    let method = reqwest::Method::from_bytes(t.method.as_bytes()).map_err(|e| SetupError::Invalid(format!("method {}: {e}", t.method)))?;
    let mut headers = HeaderMap::new();
    let mut secrets = Vec::new();
    for h in &t.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| SetupError::Invalid(format!("header {}: {e}", h.name)))?;
        let value = match &h.value {
            PlanHeaderValue::Inline(v) => v.clone(),
            PlanHeaderValue::Secret { name: secret, key } => {
                let path = Mounts::key(&mounts.secret_dir(secret)?, key)?;
                let raw = read_file(&path, &format!("header {} from Secret {secret}", h.name))?;
                let v = String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\r']).to_string();
                secrets.push(v.clone());
                v
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| SetupError::Invalid(format!("header {} has an invalid value", h.name)))?;
        if matches!(h.value, PlanHeaderValue::Secret { .. }) {
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
    pub fn build(t: &HttpTarget, r: Resolved, p: &Pressure, mounts: &Mounts) -> Result<Self, SetupError> {
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
            crate::plan::Tls::default()
        };
        b = b.tls_backend_preconfigured(client_tls(&tls, alpn(t.version), mounts)?);
        if url.scheme() == "https"
            && let Some(sni) = &t.tls.server_name
        {
            // Connect to the URL's address but name the server `sni` (TLS and Host).
            let ip: std::net::IpAddr = url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
                .ok_or_else(|| SetupError::Invalid("tls.serverName needs an IP address in the URL".into()))?;
            let port = url.port_or_known_default().unwrap_or(443);
            url.set_host(Some(sni))
                .map_err(|e| SetupError::Invalid(format!("tls.serverName {sni}: {e}")))?;
            b = b.resolve(sni, std::net::SocketAddr::new(ip, port));
        }
        let client = b.build().map_err(SetupError::Client)?;
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
fn configmap_json(dir: &std::path::Path) -> Result<Vec<u8>, SetupError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SetupError::Read {
        what: "body ConfigMap directory".into(),
        path: dir.to_path_buf(),
        source,
    })?;
    let mut data = std::collections::BTreeMap::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") || !e.path().is_file() {
            continue;
        }
        let v = read_file(&e.path(), "body ConfigMap key")?;
        data.insert(name, String::from_utf8_lossy(&v).to_string());
    }
    serde_json::to_vec(&data).map_err(|e| SetupError::Invalid(format!("body ConfigMap: {e}")))
}

fn alpn(version: HttpVersion) -> Vec<Vec<u8>> {
    match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
}
