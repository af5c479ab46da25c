//! What an HTTP round does: its targets, headers (inline or from Secrets), bodies and versions.

use serde::Serialize;

use crate::plan::{Expect, FileRef, Tls};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpPlan {
    pub targets: Vec<HttpTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpTarget {
    pub name: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<Header>,
    pub body: Body,
    pub tls: Tls,
    pub version: HttpVersion,
    /// How many redirects to follow; 0 reports the 3xx itself.
    pub redirects: u32,
    pub expect: Expect,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderValue {
    Inline(String),
    /// A key of a Secret mounted in the pod (credentials never sit in the task).
    Secret {
        name: String,
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Body {
    None,
    Inline(String),
    /// A file beside the task (local runs).
    File(FileRef),
    /// One key of a ConfigMap mounted in the pod.
    ConfigMapKey {
        name: String,
        key: String,
    },
    /// kdoctor's `bodyConfigmapName`: the JSON encoding of the ConfigMap's whole data map.
    ConfigMapJson {
        name: String,
        namespace: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it in TLS ALPN, HTTP/1.1 otherwise.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: ALPN over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}
