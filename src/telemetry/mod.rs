//! Telemetry: every round as one OTLP trace (root span `round`, a child span per agent and
//! per target) and a set of metrics, sent over gRPC or HTTP/protobuf as the standard OTEL_*
//! variables say. Configuration and span building are pure; the export is bounded by a
//! flush deadline and never changes a verdict: a collector that is down, slow or refusing
//! costs at most that deadline and one log line.
//!
//! Headers and endpoints may carry credentials, so no message here shows a setting's value:
//! a malformed one is named by its variable (and entry), endpoints are shown without
//! userinfo, and export errors from the libraries are scrubbed of every header value and
//! userinfo before they are printed ([`Config::scrub`]).

pub mod mesh;
pub mod names;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::duration::parse_duration;
use crate::judge::Verdict;
use crate::plan::Plan;
use crate::report::RoundReport;
use names::*;

/// How to send telemetry, from the environment. Its `Debug` shows no header value and no
/// userinfo.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub protocol: Protocol,
    /// Full endpoint of each signal (`None`: that signal is off).
    pub traces: Option<String>,
    pub metrics: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// The whole export must finish within this (KPATROL_TELEMETRY_FLUSH, default 2 s).
    pub flush: Duration,
    pub service_name: String,
    /// Resource attributes: KPATROL_RESOURCE_ATTRIBUTES then OTEL_RESOURCE_ATTRIBUTES.
    pub resource: Vec<(String, String)>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Config")
            .field("protocol", &self.protocol)
            .field("traces", &self.traces.as_deref().map(shown_endpoint))
            .field("metrics", &self.metrics.as_deref().map(shown_endpoint))
            .field("headers (values hidden)", &header_names)
            .field("timeout", &self.timeout)
            .field("flush", &self.flush)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .finish()
    }
}

impl Config {
    /// `text` (a library's error) with every header value and endpoint userinfo, in any
    /// encoding it could be printed in, replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        for ep in self.traces.iter().chain(&self.metrics) {
            if let Ok(url) = reqwest::Url::parse(ep) {
                for part in [url.username(), url.password().unwrap_or("")] {
                    secrets.push(part.to_string());
                    secrets.push(String::from_utf8_lossy(&percent_decode(part)).into_owned());
                }
            }
            // as given, in case a library prints it unparsed
            if let Some((userinfo, _)) = ep.split_once("://").and_then(|(_, rest)| rest.rsplit_once('@')) {
                secrets.push(userinfo.to_string());
                secrets.extend(userinfo.split(':').map(str::to_string));
            }
        }
        secrets.extend(self.headers.iter().map(|(_, v)| v.clone()));
        // the longest first, so a secret containing another is replaced whole
        secrets.retain(|s| !s.trim().is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in &secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// `endpoint` for messages: without userinfo (which may hold a password).
pub fn shown_endpoint(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(url) if url.username().is_empty() && url.password().is_none() => endpoint.to_string(),
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Reads the configuration from environment variables (given as a lookup, so tests pass
/// their own). `Ok(None)`: telemetry is off (no endpoint, or disabled). `Err`: a setting is
/// malformed: the caller warns and runs without telemetry.
pub fn config_from(env: impl Fn(&str) -> Option<String>) -> Result<Option<Config>, String> {
    let get = |k: &str| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let protocol = match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        None | Some("grpc") => Protocol::Grpc,
        Some("http/protobuf") => Protocol::HttpProtobuf,
        Some(_) => {
            return Err("OTEL_EXPORTER_OTLP_PROTOCOL is not supported (allowed: grpc, http/protobuf)".into());
        }
    };
    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT");
    let signal = |specific: &str, exporter: &str, path: &str| -> Result<Option<String>, String> {
        if get(exporter).is_some_and(|v| v == "none") {
            return Ok(None);
        }
        let (var, endpoint) = match (get(specific), &base) {
            (Some(e), _) => (specific, e),
            (None, Some(b)) if protocol == Protocol::HttpProtobuf => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/{path}", b.trim_end_matches('/')),
            ),
            (None, Some(b)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", b.clone()),
            (None, None) => return Ok(None),
        };
        // the URL parser's reasons name no part of the value
        let url = reqwest::Url::parse(&endpoint).map_err(|e| format!("{var} is not a URL ({e})"))?;
        if url.scheme() != "http" && url.scheme() != "https" || url.host_str().is_none() {
            return Err(format!("{var} must be an http:// or https:// URL with a host"));
        }
        if protocol == Protocol::Grpc && url.scheme() == "https" {
            return Err(format!(
                "{var}: gRPC over TLS is not built in; use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            ));
        }
        Ok(Some(endpoint))
    };
    let traces = signal(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "v1/traces",
    )?;
    let metrics = signal(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_METRICS_EXPORTER",
        "v1/metrics",
    )?;
    if traces.is_none() && metrics.is_none() {
        return Ok(None);
    }
    let headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
        None => vec![],
        Some(h) => {
            let headers = pairs(&h).map_err(|e| format!("OTEL_EXPORTER_OTLP_HEADERS: {e}"))?;
            for (i, (k, v)) in headers.iter().enumerate() {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_HEADERS: entry {} is not a valid header name and value",
                        i + 1
                    ));
                }
            }
            headers
        }
    };
    let timeout = match get("OTEL_EXPORTER_OTLP_TIMEOUT") {
        None => Duration::from_secs(2),
        Some(ms) => Duration::from_millis(
            ms.parse::<u64>()
                .map_err(|_| "OTEL_EXPORTER_OTLP_TIMEOUT is not a whole number of milliseconds".to_string())?,
        ),
    };
    let flush = match get("KPATROL_TELEMETRY_FLUSH") {
        None => Duration::from_secs(2),
        Some(d) => {
            parse_duration(&d).ok_or_else(|| "KPATROL_TELEMETRY_FLUSH is not a duration such as 2s".to_string())?
        }
    };
    let mut resource = Vec::new();
    for var in [crate::names::env::RESOURCE_ATTRIBUTES, "OTEL_RESOURCE_ATTRIBUTES"] {
        if let Some(v) = get(var) {
            resource.extend(pairs(&v).map_err(|e| format!("{var}: {e}"))?);
        }
    }
    let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| "kpatrol".into());
    Ok(Some(Config {
        protocol,
        traces,
        metrics,
        headers,
        timeout: timeout.min(flush),
        flush,
        service_name,
        resource,
    }))
}

/// `k=v,k2=v2` with percent-encoded values. Errors name the entry by position: an entry
/// may be a header holding a credential.
fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, part) in text.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let n = i + 1;
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("entry {n} is not key=value (values are not shown)"))?;
        let k = k.trim();
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("entry {n} has no valid key (values are not shown)"));
        }
        out.push((
            k.to_string(),
            String::from_utf8_lossy(&percent_decode(v.trim())).into_owned(),
        ));
    }
    Ok(out)
}

/// Decodes `%XX` sequences; a `%` not followed by two hex digits stays as it is (the W3C
/// baggage format the OTEL variables use has no other escape). Works on bytes: a sequence
/// may be cut short by any character, multi-byte ones included. Pure.
fn percent_decode(s: &str) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Where this round's spans belong.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceIds {
    pub trace_id: TraceId,
    /// The `round` span's id.
    pub round_span: SpanId,
    /// Whether this process emits the `round` span (otherwise another one does: the
    /// launcher, or agent 0).
    pub emit_round: bool,
}

/// The trace of a round. A W3C `traceparent` (passed by a launcher) names it; otherwise
/// every agent of a round derives the same ids from the round's Job (namespace and name),
/// and agent 0 emits the round span; outside a cluster the ids are random. Pure.
pub fn trace_ids(traceparent: Option<&str>, namespace: &str, job: Option<&str>, agent_index: u32) -> TraceIds {
    if let Some(tp) = traceparent.and_then(parse_traceparent) {
        return TraceIds {
            trace_id: tp.0,
            round_span: tp.1,
            emit_round: false,
        };
    }
    let derived = job.and_then(|job| {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("kpatrol/round/{namespace}/{job}").as_bytes(),
        );
        ids_from(d.as_ref())
    });
    match derived {
        Some((trace_id, round_span)) => TraceIds {
            trace_id,
            round_span,
            emit_round: agent_index == 0,
        },
        None => {
            let (mut trace, mut span) = ([0u8; 16], [0u8; 8]);
            let rng = ring::rand::SystemRandom::new();
            ring::rand::SecureRandom::fill(&rng, &mut trace).unwrap_or(());
            ring::rand::SecureRandom::fill(&rng, &mut span).unwrap_or(());
            TraceIds {
                trace_id: TraceId::from_bytes(trace),
                round_span: SpanId::from_bytes(span),
                emit_round: true,
            }
        }
    }
}

/// A trace id from the first 16 bytes and a span id from the next 8; `None` when fewer
/// than 24 (a SHA-256 digest always has 32).
fn ids_from(b: &[u8]) -> Option<(TraceId, SpanId)> {
    let (trace, rest) = b.split_first_chunk::<16>()?;
    let span = rest.first_chunk::<8>()?;
    Some((TraceId::from_bytes(*trace), SpanId::from_bytes(*span)))
}

/// `00-<trace id>-<span id>-<flags>`.
pub fn parse_traceparent(tp: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = tp.trim().split('-');
    let (Some("00"), Some(trace), Some(span), Some(_flags), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let t = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let s = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    Some((t, s))
}

/// Who sent the round, from the rendered pod's environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agent {
    pub index: u32,
    pub job: Option<String>,
    pub namespace: String,
}

impl Agent {
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Agent {
        Agent {
            index: env(crate::names::env::AGENT_INDEX)
                .and_then(|i| i.parse().ok())
                .unwrap_or(0),
            job: env(crate::names::env::JOB_NAME).filter(|j| !j.is_empty()),
            namespace: env(crate::names::env::NAMESPACE).unwrap_or_default(),
        }
    }
}

pub(crate) fn span_id(seed: &TraceIds, n: u64) -> SpanId {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        &[
            seed.trace_id.to_bytes().as_slice(),
            &seed.round_span.to_bytes(),
            &n.to_be_bytes(),
        ]
        .concat(),
    );
    // a SHA-256 digest always has 8 bytes
    d.as_ref()
        .first_chunk::<8>()
        .map_or(SpanId::INVALID, |b| SpanId::from_bytes(*b))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn span(
    ids: &TraceIds,
    id: SpanId,
    parent: SpanId,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    failed: Option<String>,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(ids.trace_id, id, TraceFlags::SAMPLED, false, TraceState::default()),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match failed {
            Some(d) => Status::error(d),
            None => Status::Ok,
        },
        instrumentation_scope: InstrumentationScope::builder(SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

/// The spans of one agent's round: `round` (when this process emits it) → `agent` →
/// one `target` per target, failing spans with an error status naming the failed checks.
/// Pure.
pub fn spans(
    ids: &TraceIds,
    agent: &Agent,
    plan: &Plan,
    report: &RoundReport,
    verdict: &Verdict,
    started: SystemTime,
) -> Vec<SpanData> {
    let end = started + Duration::from_secs_f64(report.duration_seconds.max(0.0));
    let failed = |target: Option<&crate::results::TargetId>| -> Option<String> {
        let names: Vec<String> = verdict
            .checks
            .iter()
            .filter(|c| !c.pass && target.is_none_or(|t| c.target() == Some(t)))
            .map(|c| format!("{} {}: {} (want {})", c.subject, c.measure, c.observed, c.threshold))
            .collect();
        (!names.is_empty()).then(|| names.join("; "))
    };
    let round_id = agent.job.clone().unwrap_or_else(|| "local".into());
    let common = vec![
        KeyValue::new(ATTR_TASK, plan.name.clone()),
        KeyValue::new(ATTR_KIND, plan.kind.clone()),
        KeyValue::new(ATTR_MODE, plan.mode.name()),
        KeyValue::new(ATTR_ROUND_ID, round_id),
    ];
    let mut out = Vec::new();
    if ids.emit_round {
        let mut attrs = common.clone();
        attrs.push(KeyValue::new(ATTR_VERDICT, report.verdict.as_str()));
        out.push(span(
            ids,
            ids.round_span,
            SpanId::INVALID,
            SPAN_ROUND,
            started,
            end,
            attrs,
            failed(None),
        ));
    }
    let agent_span = span_id(ids, 1_000_000 + agent.index as u64);
    let mut attrs = common.clone();
    attrs.push(KeyValue::new(ATTR_VERDICT, report.verdict.as_str()));
    attrs.push(KeyValue::new(ATTR_AGENT_INDEX, agent.index as i64));
    out.push(span(
        ids,
        agent_span,
        ids.round_span,
        SPAN_AGENT,
        started,
        end,
        attrs,
        failed(None),
    ));
    for (i, t) in report.targets.iter().enumerate() {
        let mut attrs = common.clone();
        attrs.extend([
            KeyValue::new(ATTR_TARGET, t.name.to_string()),
            KeyValue::new(ATTR_SENT, t.sent as i64),
            KeyValue::new(ATTR_UNSENT, t.unsent as i64),
            KeyValue::new(ATTR_ANSWERED, t.answered as i64),
            KeyValue::new(ATTR_FAILED, t.failed as i64),
            KeyValue::new(ATTR_SUCCESS_RATIO, t.success_rate),
        ]);
        if let Some(l) = &t.latency_ms {
            for (q, v) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("max", l.max)] {
                attrs.push(KeyValue::new(
                    format!("{ATTR_LATENCY_MS}.{q}"),
                    v.as_secs_f64() * 1000.0,
                ));
            }
        }
        for (kind, n) in &t.errors {
            attrs.push(KeyValue::new(format!("{ATTR_ERRORS}.{kind}"), *n as i64));
        }
        let id = span_id(ids, (agent.index as u64) << 20 | i as u64);
        out.push(span(
            ids,
            id,
            agent_span,
            SPAN_TARGET,
            started,
            end,
            attrs,
            failed(Some(&t.name)),
        ));
    }
    out
}

/// The W3C `traceparent` that makes agents' spans children of the round span.
pub fn traceparent(ids: &TraceIds) -> String {
    format!("00-{}-{}-01", ids.trace_id, ids.round_span)
}

/// The launcher's `round` span over a whole per-node round. Pure.
pub fn launcher_span(
    ids: &TraceIds,
    plan: &Plan,
    round_id: &str,
    pass: bool,
    problems: Option<String>,
    started: SystemTime,
    ended: SystemTime,
) -> SpanData {
    let attrs = vec![
        KeyValue::new(ATTR_TASK, plan.name.clone()),
        KeyValue::new(ATTR_KIND, plan.kind.clone()),
        KeyValue::new(ATTR_MODE, plan.mode.name()),
        KeyValue::new(ATTR_ROUND_ID, round_id.to_string()),
        KeyValue::new(ATTR_VERDICT, if pass { "pass" } else { "fail" }),
    ];
    span(
        ids,
        ids.round_span,
        SpanId::INVALID,
        SPAN_ROUND,
        started,
        ended,
        attrs,
        if pass {
            None
        } else {
            problems.or(Some("round failed".into()))
        },
    )
}

/// Why a round's telemetry did not reach the collector. Never fatal: one log line. Every
/// text in it is scrubbed of the configured credentials.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The exporter could not be built, or the library refused or failed the export.
    #[error("{0}")]
    Sdk(String),
    /// No answer within `OTEL_EXPORTER_OTLP_TIMEOUT`.
    #[error("no answer within OTEL_EXPORTER_OTLP_TIMEOUT ({})", crate::duration::format_duration(*.0))]
    Timeout(Duration),
    /// One signal's export failed: where to (shown without credentials) and why.
    #[error("{signal} to {endpoint}: {cause}")]
    Endpoint {
        signal: &'static str,
        endpoint: String,
        cause: String,
    },
    /// The collector did not take the round within the flush bound.
    #[error("the collector did not take the round within {}", crate::duration::format_duration(*.0))]
    Flush(Duration),
    /// The launcher's span did not go out within the flush bound.
    #[error("the collector did not take the round span in time")]
    SpanFlush,
    /// Traces and metrics both failed.
    #[error("{0}; {1}")]
    Both(Box<ExportError>, Box<ExportError>),
}

impl ExportError {
    /// `self` as the failure of `signal` to `endpoint`, scrubbed.
    fn at(self, signal: &'static str, endpoint: &str, cfg: &Config) -> ExportError {
        ExportError::Endpoint {
            signal,
            endpoint: shown_endpoint(endpoint),
            cause: cfg.scrub(&self.to_string()),
        }
    }
}

/// Sends the launcher's `round` span. Bounded by `cfg.flush`.
pub async fn export_launcher_span(cfg: &Config, plan: &Plan, span: SpanData) -> Result<(), ExportError> {
    let Some(ep) = &cfg.traces else { return Ok(()) };
    match tokio::time::timeout(cfg.flush, export_spans(cfg, ep, resource(cfg, plan), vec![span])).await {
        Ok(r) => r.map_err(|e| e.at("traces", ep, cfg)),
        Err(_) => Err(ExportError::SpanFlush),
    }
}

fn resource(cfg: &Config, plan: &Plan) -> Resource {
    let mut attrs: Vec<KeyValue> = cfg
        .resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attrs.push(KeyValue::new(ATTR_TASK, plan.name.clone()));
    attrs.push(KeyValue::new(ATTR_KIND, plan.kind.clone()));
    for (k, v) in &plan.labels {
        attrs.push(KeyValue::new(format!("kpatrol.label.{k}"), v.clone()));
    }
    Resource::builder_empty()
        .with_service_name(cfg.service_name.clone())
        .with_attributes(attrs)
        .build()
}

/// Headers for gRPC metadata; invalid names or values are skipped.
fn header_map(headers: &[(String, String)]) -> reqwest::header::HeaderMap {
    let mut m = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            reqwest::header::HeaderValue::from_str(v),
        ) {
            m.insert(k, v);
        }
    }
    m
}

/// An OTLP exporter of `$kind` (SpanExporter, MetricExporter) for the configured protocol,
/// endpoint, timeout and headers; returns early with the error text.
macro_rules! exporter {
    ($kind:ident, $cfg:expr, $endpoint:expr) => {
        match $cfg.protocol {
            Protocol::Grpc => opentelemetry_otlp::$kind::builder()
                .with_tonic()
                .with_endpoint($endpoint)
                .with_timeout($cfg.timeout)
                .with_metadata(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(
                    header_map(&$cfg.headers),
                ))
                .build(),
            Protocol::HttpProtobuf => opentelemetry_otlp::$kind::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint($endpoint)
                .with_timeout($cfg.timeout)
                .with_headers($cfg.headers.iter().cloned().collect::<HashMap<_, _>>())
                .with_http_client(http_client($cfg.timeout)?)
                .build(),
        }
        .map_err(|e| ExportError::Sdk(e.to_string()))?
    };
}

/// The HTTP client of the http/protobuf exporter. The exporter's own timeout does not reach
/// a client handed to it, so the client carries the per-export timeout itself.
fn http_client(timeout: Duration) -> Result<reqwest::Client, ExportError> {
    crate::probe::client::own_client(timeout).map_err(ExportError::Sdk)
}

/// One export call, bounded by the per-export timeout whatever the protocol and library.
async fn bounded(
    timeout: Duration,
    f: impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult>,
) -> Result<(), ExportError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(|e| ExportError::Sdk(e.to_string())),
        Err(_) => Err(ExportError::Timeout(timeout)),
    }
}

/// Sends one round's spans and metrics. Bounded by `cfg.flush`; an error is for one log line.
pub async fn export(
    cfg: &Config,
    plan: &Plan,
    report: &RoundReport,
    verdict: &Verdict,
    round: &crate::results::RoundResult,
    agent: &Agent,
    ids: &TraceIds,
) -> Result<(), ExportError> {
    send(
        cfg,
        plan,
        || spans(ids, agent, plan, report, verdict, round.started_at),
        |meter| record(meter, plan, report, verdict, round, ids),
    )
    .await
}

/// Sends the spans `spans` builds and the metrics `record` records, traces and metrics side
/// by side (one slow endpoint does not starve the other), bounded by `cfg.flush`.
pub(crate) async fn send(
    cfg: &Config,
    plan: &Plan,
    spans: impl FnOnce() -> Vec<SpanData>,
    record: impl FnOnce(&opentelemetry::metrics::Meter),
) -> Result<(), ExportError> {
    let work = async {
        let res = resource(cfg, plan);
        let traces = async {
            match &cfg.traces {
                Some(ep) => export_spans(cfg, ep, res.clone(), spans())
                    .await
                    .map_err(|e| e.at("traces", ep, cfg)),
                None => Ok(()),
            }
        };
        let metrics = async {
            match &cfg.metrics {
                Some(ep) => export_metrics(cfg, ep, res.clone(), record)
                    .await
                    .map_err(|e| e.at("metrics", ep, cfg)),
                None => Ok(()),
            }
        };
        match tokio::join!(traces, metrics) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(t), Err(m)) => Err(ExportError::Both(Box::new(t), Box::new(m))),
        }
    };
    match tokio::time::timeout(cfg.flush, work).await {
        Ok(r) => r,
        Err(_) => Err(ExportError::Flush(cfg.flush)),
    }
}

async fn export_spans(cfg: &Config, endpoint: &str, res: Resource, batch: Vec<SpanData>) -> Result<(), ExportError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
    use opentelemetry_sdk::trace::SpanExporter as _;
    let mut exporter = exporter!(SpanExporter, cfg, endpoint);
    exporter.set_resource(&res);
    bounded(cfg.timeout, exporter.export(batch)).await
}

async fn export_metrics(
    cfg: &Config,
    endpoint: &str,
    res: Resource,
    record: impl FnOnce(&opentelemetry::metrics::Meter),
) -> Result<(), ExportError> {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::reader::MetricReader;
    let reader = opentelemetry_sdk::metrics::ManualReader::builder().build();
    let reader = std::sync::Arc::new(reader);
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_resource(res)
        .with_reader(SharedReader(reader.clone()))
        .build();
    record(&provider.meter(SCOPE));
    let mut rm = opentelemetry_sdk::metrics::data::ResourceMetrics::default();
    reader.collect(&mut rm).map_err(|e| ExportError::Sdk(e.to_string()))?;
    let exporter = exporter!(MetricExporter, cfg, endpoint);
    let r = bounded(cfg.timeout, exporter.export(&rm)).await;
    drop(provider);
    r
}

/// A ManualReader shared between the provider and the exporting code.
#[derive(Debug, Clone)]
struct SharedReader(std::sync::Arc<opentelemetry_sdk::metrics::ManualReader>);

impl opentelemetry_sdk::metrics::reader::MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(
        &self,
        rm: &mut opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality(kind)
    }
}

/// Records one round's metrics.
fn record(
    meter: &opentelemetry::metrics::Meter,
    plan: &Plan,
    report: &RoundReport,
    verdict: &Verdict,
    round: &crate::results::RoundResult,
    ids: &TraceIds,
) {
    let requests = meter
        .u64_counter(METRIC_REQUESTS)
        .with_description("Attempts by target and outcome")
        .build();
    let duration = meter
        .f64_histogram(METRIC_REQUEST_DURATION)
        .with_unit("s")
        .with_description("Latency of answered attempts, from the intended send time")
        .with_boundaries(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .build();
    let latency = meter
        .f64_gauge(METRIC_LATENCY)
        .with_unit("s")
        .with_description("Latency percentiles of a target")
        .build();
    let ratio = meter
        .f64_gauge(METRIC_SUCCESS_RATIO)
        .with_description("Successful over sent attempts")
        .build();
    let round_duration = meter.f64_gauge(METRIC_ROUND_DURATION).with_unit("s").build();
    let verdict_gauge = meter
        .i64_gauge(METRIC_ROUND_VERDICT)
        .with_description("1 pass, 0 fail")
        .build();
    let check = meter
        .i64_gauge(METRIC_CHECK)
        .with_description("1 per passing check, 0 per failing one")
        .build();
    let base = [
        KeyValue::new(ATTR_TASK, plan.name.clone()),
        KeyValue::new(ATTR_KIND, plan.kind.clone()),
    ];
    let with = |extra: &[KeyValue]| -> Vec<KeyValue> { base.iter().cloned().chain(extra.iter().cloned()).collect() };
    for t in &report.targets {
        let target = KeyValue::new(ATTR_TARGET, t.name.to_string());
        for (code, n) in &t.codes {
            let outcome = if t.succeeded == t.answered || success_code(plan, t.name.as_str(), code) {
                "success"
            } else {
                "failure"
            };
            requests.add(
                *n,
                &with(&[
                    target.clone(),
                    KeyValue::new(ATTR_OUTCOME, outcome),
                    KeyValue::new(ATTR_CODE, code.clone()),
                ]),
            );
        }
        for (kind, n) in &t.errors {
            requests.add(
                *n,
                &with(&[
                    target.clone(),
                    KeyValue::new(ATTR_OUTCOME, "failure"),
                    KeyValue::new(ATTR_ERROR, kind.clone()),
                ]),
            );
        }
        let attrs = with(std::slice::from_ref(&target));
        // the report has a target only from its result
        for v in round
            .target(&t.name)
            .into_iter()
            .flat_map(|r| r.stats.hist.iter_recorded())
        {
            let secs = v.value_iterated_to() as f64 / 1e6;
            for _ in 0..v.count_at_value() {
                duration.record(secs, &attrs);
            }
        }
        if let Some(l) = &t.latency_ms {
            for (q, v) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("max", l.max)] {
                latency.record(
                    v.as_secs_f64(),
                    &with(&[target.clone(), KeyValue::new(ATTR_QUANTILE, q)]),
                );
            }
        }
        ratio.record(t.success_rate, &attrs);
    }
    round_duration.record(report.duration_seconds, &base);
    verdict_gauge.record(i64::from(verdict.passed()), &base);
    for c in &verdict.checks {
        let mut attrs = with(&[
            KeyValue::new(ATTR_TARGET, c.subject.to_string()),
            KeyValue::new(ATTR_CHECK, c.measure.name()),
        ]);
        if !c.pass {
            attrs.push(KeyValue::new(ATTR_TRACE_ID, ids.trace_id.to_string()));
        }
        check.record(i64::from(c.pass), &attrs);
    }
}

/// Whether `code` (as named in reports) counts as a success for `target`.
fn success_code(plan: &Plan, target: &str, code: &str) -> bool {
    plan.targets()
        .into_iter()
        .find(|(n, _)| *n == target)
        .is_some_and(|(_, e)| {
            e.codes.is_empty()
                || e.codes
                    .iter()
                    .any(|r| (r.from..=r.to).any(|c| e.code_kind.name(c) == code))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn configuration_follows_the_otel_variables() {
        assert_eq!(config_from(env(&[])), Ok(None));
        let c = config_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.protocol, c.traces.as_deref(), c.metrics.as_deref()),
            (
                Protocol::Grpc,
                Some("http://127.0.0.1:4317"),
                Some("http://127.0.0.1:4317")
            )
        );
        assert_eq!(c.flush, Duration::from_secs(2));
        let c = config_from(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x,tenant=a"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("KPATROL_RESOURCE_ATTRIBUTES", "k8s.pod.name=p"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=prod"),
            ("OTEL_SERVICE_NAME", "probe"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.traces.as_deref(), Some("http://c:4318/v1/traces"));
        assert_eq!(c.metrics, None);
        assert_eq!(
            c.headers,
            vec![
                ("authorization".into(), "Bearer x".into()),
                ("tenant".into(), "a".into())
            ]
        );
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(
            c.resource,
            vec![
                ("k8s.pod.name".into(), "p".into()),
                ("k8s.cluster.name".into(), "prod".into())
            ]
        );
        assert_eq!(c.service_name, "probe");
        assert_eq!(
            config_from(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_SDK_DISABLED", "true")
            ])),
            Ok(None)
        );
    }

    #[test]
    fn malformed_settings_turn_telemetry_off_with_a_reason() {
        for (k, v, want) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "is not a URL"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "ftp://c:4317",
                "must be an http:// or https:// URL",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "is not key=value"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "a=%0Ax",
                "not a valid header name and value",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "not supported"),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "soon",
                "not a whole number of milliseconds",
            ),
        ] {
            let mut e = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), (k, v)];
            e.dedup_by_key(|p| p.0);
            if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                e = vec![(k, v)];
            }
            let err = config_from(env(&e)).unwrap_err();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn malformed_percent_sequences_stay_as_they_are() {
        for (text, want) in [
            ("%1ü", "%1ü"),
            ("%ü1", "%ü1"),
            ("a%41%4", "aA%4"),
            ("%", "%"),
            ("%%41", "%A"),
            ("%zz", "%zz"),
            ("%e2%9c%93", "✓"),
        ] {
            assert_eq!(String::from_utf8_lossy(&percent_decode(text)), want, "{text}");
        }
        for var in [
            "OTEL_RESOURCE_ATTRIBUTES",
            "KPATROL_RESOURCE_ATTRIBUTES",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ] {
            let c = config_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), (var, "k=%1ü")]))
                .unwrap()
                .unwrap();
            let got = if var == "OTEL_EXPORTER_OTLP_HEADERS" {
                c.headers
            } else {
                c.resource
            };
            assert_eq!(got, vec![("k".to_string(), "%1ü".to_string())], "{var}");
        }
    }

    #[test]
    fn warnings_name_the_variable_never_the_value() {
        for (k, v) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer SECRET"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization Bearer SECRET=x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,Authorization=Bearer%0ASECRET"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:SECRET@"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://user:SECRET@c:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:SECRET@c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "user:SECRET@c:4317"),
            ("OTEL_RESOURCE_ATTRIBUTES", "SECRET"),
            ("KPATROL_RESOURCE_ATTRIBUTES", "SECRET x=1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "SECRET"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "SECRET"),
            ("KPATROL_TELEMETRY_FLUSH", "SECRET"),
        ] {
            let mut e = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), (k, v)];
            e.dedup_by_key(|p| p.0);
            if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                e = vec![(k, v)];
            }
            let err = config_from(env(&e)).unwrap_err();
            assert!(err.starts_with(k), "{k}={v}: {err}");
            assert!(!err.contains("SECRET") && !err.contains("user"), "{k}={v}: {err}");
        }
    }

    #[test]
    fn export_errors_are_scrubbed_of_credentials() {
        let c = config_from(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://us%65r:p%40ss@c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20TOKEN"),
        ]))
        .unwrap()
        .unwrap();
        let ep = c.traces.clone().unwrap();
        assert_eq!(shown_endpoint(&ep), "http://c:4318/v1/traces");
        let text = format!("error sending request for url ({ep}): user p@ss us%65r:p%40ss header Bearer TOKEN");
        let got = c.scrub(&text);
        for secret in ["us%65r", "p%40ss", "user", "p@ss", "TOKEN"] {
            assert!(!got.contains(secret), "{secret} in {got}");
        }
        assert!(
            got.starts_with("error sending request for url (http://***@c:4318/v1/traces)"),
            "{got}"
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("TOKEN") && !debug.contains("p%40ss"), "{debug}");
    }

    #[test]
    fn every_agent_of_a_round_computes_the_same_trace() {
        let a = trace_ids(None, "kpatrol", Some("web-29000"), 0);
        let b = trace_ids(None, "kpatrol", Some("web-29000"), 3);
        assert_eq!((a.trace_id, a.round_span), (b.trace_id, b.round_span));
        assert!(a.emit_round && !b.emit_round);
        let c = trace_ids(None, "kpatrol", Some("web-29001"), 0);
        assert_ne!(a.trace_id, c.trace_id);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let d = trace_ids(Some(tp), "kpatrol", Some("web-29000"), 0);
        assert_eq!(
            d.trace_id,
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert!(!d.emit_round, "the launcher emits the round span");
        assert_eq!(parse_traceparent("00-zz-00f067aa0ba902b7-01"), None);
    }
}
