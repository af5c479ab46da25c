//! kdoctor compatibility: `kdoctor.io/v1beta1` `AppHttpHealthy`, `NetReach` and `Netdns`
//! accepted unchanged, with kdoctor's defaults (CRD defaults inside present blocks, webhook
//! defaults for absent blocks) and its admission rules, mapped onto the native plan with
//! kdoctor's meaning. See `docs/kdoctor.md` for the field-by-field table.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Meta;
use super::k8s::NameRule;
use super::native::{field_name, named, to_json};
use super::read::{Cx, Fields};
use crate::modes::dns::*;
use crate::modes::http::read::header_line;
use crate::modes::http::*;
use crate::modes::reach::ReachPlan;
use crate::plan::schedule::{self, MAX_MINUTES, Schedule};
use crate::plan::*;

/// kdoctor's chart defaults: qps must stay strictly below these.
pub const MAX_QPS_APP_HTTP: i64 = 100;
pub const MAX_QPS_NET_REACH: i64 = 20;
pub const MAX_QPS_NET_DNS: i64 = 100;

/// An Indexed Job's completions limit: the most agents one round can have.
const MAX_AGENTS: i64 = 100_000;

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "HEAD"];

struct Common {
    /// Positions of fields rendering may still complain about.
    positions: Vec<(String, crate::diag::Pos)>,
    schedule: Schedule,
    rounds: i64,
    round_timeout: Duration,
    agents: Agents,
    pressure: Pressure,
    expect: Expect,
}

/// Reads `spec.schedule`, `spec.agentSpec`, `spec.request` (qps, duration, timeout) and `spec.expect`.
/// `max_qps` is the kind's limit; `webhook_defaults` says whether absent blocks get the
/// mutating webhook's values (NetReach, AppHttpHealthy) or are required (Netdns).
fn common(
    cx: &mut Cx,
    spec: &mut Fields,
    request: Option<&mut Fields>,
    max_qps: i64,
    webhook_defaults: bool,
    kind: &str,
) -> Option<Common> {
    let before = cx.diags.error_count();
    // schedule
    let mut positions = Vec::new();
    let (schedule, round_timeout_min, rounds) = match spec.map(cx, "schedule") {
        Some(mut s) => {
            positions.push(("spec.schedule.schedule".to_string(), s.pos_of("schedule")));
            let sched = match s.required(cx, "schedule") {
                Some(n) => {
                    let path = s.path_of("schedule");
                    cx.string(n, &path)
                        .and_then(|text| match schedule::parse_kdoctor(&text) {
                            Ok(x) => Some(x),
                            Err(e) => {
                                cx.diags.error(n.pos, &path, e.message).allowed(e.allowed);
                                None
                            }
                        })
                }
                None => None,
            };
            let mut rt = s.int(cx, "roundTimeoutMinute").unwrap_or(60);
            if !(1..=MAX_MINUTES as i64).contains(&rt) {
                cx.diags
                    .error(
                        s.pos_of("roundTimeoutMinute"),
                        &s.path_of("roundTimeoutMinute"),
                        format!("{rt} minutes"),
                    )
                    .allowed(format!("1–{MAX_MINUTES}"));
                rt = rt.clamp(1, MAX_MINUTES as i64);
            }
            let rounds = s.int(cx, "roundNumber").unwrap_or(1);
            if rounds == 0 || rounds < -1 {
                cx.diags
                    .error(
                        s.pos_of("roundNumber"),
                        &s.path_of("roundNumber"),
                        format!("{rounds} rounds would never run"),
                    )
                    .allowed("-1 (forever) or a number ≥ 1");
            }
            if let Some(Schedule::Minutes { every_min, .. }) = &sched {
                if schedule::interval_cron(Duration::from_secs(every_min * 60)).is_none() {
                    cx.diags.warn(s.pos_of("schedule"), &s.path_of("schedule"), format!(
                        "kdoctor takes every {every_min} minutes, but a CronJob cannot repeat it evenly: `kpatrol render` refuses it"
                    ));
                }
                if rt > *every_min as i64 {
                    let pos = if s.has("roundTimeoutMinute") {
                        s.pos_of("roundTimeoutMinute")
                    } else {
                        s.pos
                    };
                    cx.diags
                        .error(pos, &s.path_of("roundTimeoutMinute"), format!(
                            "round timeout of {rt} minutes is longer than the schedule's interval of {every_min} minutes (kdoctor's rule; its default is 60)"
                        ))
                        .allowed(format!("1–{every_min}"));
                }
            }
            s.finish(cx);
            (sched, rt.max(1), rounds)
        }
        // present but not a mapping: already reported
        None if spec.has("schedule") => (None, 60, 1),
        None if webhook_defaults => {
            // kdoctor's webhook default "0 1" with roundTimeoutMinute 60 fails its own rule.
            cx.diags
                .error(spec.pos, &spec.path_of("schedule"), format!(
                    "{kind} without spec.schedule gets kdoctor's default \"0 1\" with roundTimeoutMinute 60, which kdoctor itself refuses (timeout longer than the interval)"
                ))
                .allowed("a schedule block such as {schedule: \"0 1\", roundTimeoutMinute: 1, roundNumber: 1}");
            (None, 60, 1)
        }
        None => {
            cx.diags
                .error(spec.pos, &spec.path_of("schedule"), "required field is missing");
            (None, 60, 1)
        }
    };
    let round_timeout = Duration::from_secs(round_timeout_min as u64 * 60);

    // request: CRD defaults when present, webhook defaults when absent
    let (qps, duration_s, timeout_ms) = match request {
        Some(r) => {
            let qps = r.int(cx, "qps").unwrap_or(5);
            let dur = r.int(cx, "durationInSecond").unwrap_or(2);
            let has_timeout = r.has("perRequestTimeoutInMS");
            let to = r.int(cx, "perRequestTimeoutInMS").unwrap_or(5);
            if !has_timeout {
                cx.diags.warn(
                    r.pos,
                    &r.path_of("perRequestTimeoutInMS"),
                    "not set: kdoctor's CRD default is 5 ms, which most targets cannot meet",
                );
            }
            if qps < 1 || qps >= max_qps {
                cx.diags
                    .error(
                        r.pos_of("qps"),
                        &r.path_of("qps"),
                        format!("{kind} requires qps {qps} within kdoctor's limit"),
                    )
                    .allowed(format!(
                        "1–{} (kdoctor's chart limit; use a native kind for more)",
                        max_qps - 1
                    ));
            }
            if dur < 1 || dur > round_timeout_min * 60 {
                cx.diags
                    .error(
                        r.pos_of("durationInSecond"),
                        &r.path_of("durationInSecond"),
                        format!("{dur} seconds does not fit the round timeout ({round_timeout_min} min)"),
                    )
                    .allowed(format!("1–{}", round_timeout_min * 60));
            }
            if to < 1 || to > round_timeout_min * 60_000 {
                cx.diags
                    .error(
                        r.pos_of("perRequestTimeoutInMS"),
                        &r.path_of("perRequestTimeoutInMS"),
                        format!("{to} ms does not fit the round timeout ({round_timeout_min} min)"),
                    )
                    .allowed(format!("1–{}", round_timeout_min * 60_000));
            }
            (qps, dur, to)
        }
        None if spec.has("request") => (5, 2, 5),
        None if webhook_defaults => (10, 2, 500),
        None => {
            cx.diags
                .error(spec.pos, &spec.path_of("request"), "required field is missing");
            (5, 2, 5)
        }
    };

    // expect
    let expect = match spec.map(cx, "expect") {
        Some(mut e) => {
            let rate = e.float(cx, "successRate").unwrap_or(1.0);
            if !(0.0..=1.0).contains(&rate) {
                cx.diags
                    .error(
                        e.pos_of("successRate"),
                        &e.path_of("successRate"),
                        format!("{rate} is not a ratio"),
                    )
                    .allowed("0–1");
            }
            let mean = e.int(cx, "meanAccessDelayInMs").unwrap_or(5000);
            if mean < 1 {
                cx.diags
                    .error(
                        e.pos_of("meanAccessDelayInMs"),
                        &e.path_of("meanAccessDelayInMs"),
                        format!("{mean} ms"),
                    )
                    .allowed("1 or more");
            }
            let codes = match e.int(cx, "statusCode") {
                Some(c) if (100..=599).contains(&c) => vec![CodeRange {
                    from: c as u16,
                    to: c as u16,
                }],
                Some(c) => {
                    cx.diags
                        .error(
                            e.pos_of("statusCode"),
                            &e.path_of("statusCode"),
                            format!("{c} is not an HTTP status"),
                        )
                        .allowed("100–599");
                    vec![]
                }
                None => vec![],
            };
            // The schema takes statusCode on every kind; only AppHttpHealthy uses it.
            let codes = if kind == "AppHttpHealthy" { codes } else { vec![] };
            e.finish(cx);
            Expect {
                success_rate: Some(rate),
                latency: LatencyLimits {
                    mean: Some(Duration::from_millis(mean.max(1) as u64)),
                    ..Default::default()
                },
                codes,
                all_sent: true,
                code_kind: if kind == "Netdns" {
                    CodeKind::Dns
                } else {
                    CodeKind::Http
                },
                whole_ms: true,
            }
        }
        None if spec.has("expect") => Expect::default(),
        None if webhook_defaults => Expect {
            success_rate: Some(1.0),
            all_sent: true,
            whole_ms: true,
            ..Default::default()
        },
        None => {
            cx.diags
                .error(spec.pos, &spec.path_of("expect"), "required field is missing");
            Expect::default()
        }
    };

    let agents = agent_spec(cx, spec);
    if cx.diags.error_count() > before {
        return None;
    }
    Some(Common {
        positions,
        schedule: schedule?,
        rounds,
        round_timeout,
        agents: agents?,
        pressure: Pressure {
            rate: Rate::Fixed(qps as f64),
            duration: Duration::from_secs(duration_s as u64),
            timeout: Duration::from_millis(timeout_ms as u64),
            connections: Connections::Reuse,
            max_in_flight: (qps as u32 * 10).max(64),
        },
        expect,
    })
}

fn agent_spec(cx: &mut Cx, spec: &mut Fields) -> Option<Agents> {
    let mut agents = Agents {
        placement: Placement::PerNode {
            node_selector: BTreeMap::new(),
        },
        host_network: false,
        annotations: BTreeMap::new(),
        passthrough: BTreeMap::new(),
    };
    let Some(mut a) = spec.map(cx, "agentSpec") else {
        return Some(agents);
    };
    agents.annotations = a.string_map(cx, "annotation").unwrap_or_default();
    agents.host_network = a.bool(cx, "hostNetwork").unwrap_or(false);
    let kind = a
        .one_of(cx, "kind", &["DaemonSet", "Deployment"])
        .unwrap_or("DaemonSet");
    let replicas = a.int(cx, "deploymentReplicas");
    for key in ["affinity", "env", "resources"] {
        if let Some(n) = a.get(key) {
            agents.passthrough.insert(key.to_string(), to_json(n));
        }
    }
    if let Some(g) = a.int(cx, "terminationGracePeriodMinutes")
        && g < 0
    {
        cx.diags
            .error(
                a.pos_of("terminationGracePeriodMinutes"),
                &a.path_of("terminationGracePeriodMinutes"),
                format!("{g} minutes"),
            )
            .allowed("0 or more");
    }
    if kind == "Deployment" {
        match replicas {
            Some(r) if (1..=MAX_AGENTS).contains(&r) => agents.placement = Placement::Count(r as u32),
            Some(r) if r > MAX_AGENTS => {
                cx.diags
                    .error(
                        a.pos_of("deploymentReplicas"),
                        &a.path_of("deploymentReplicas"),
                        format!(
                            "{r} replicas: a round is one Indexed Job, and Kubernetes stops those at {MAX_AGENTS} pods"
                        ),
                    )
                    .allowed(format!("1–{MAX_AGENTS}"));
            }
            Some(r) => {
                cx.diags
                    .error(
                        a.pos_of("deploymentReplicas"),
                        &a.path_of("deploymentReplicas"),
                        format!("{r} replicas run no agent"),
                    )
                    .allowed("1 or more");
            }
            None => {
                cx.diags
                    .error(
                        a.pos,
                        &a.path_of("deploymentReplicas"),
                        "a Deployment without deploymentReplicas runs no agent (kdoctor's template has replicas: 0)",
                    )
                    .allowed("1 or more");
            }
        }
    }
    a.finish(cx);
    Some(agents)
}

fn plan(mut meta: Meta, kind: &str, c: Common, mode: Mode) -> Plan {
    meta.origin.positions.extend(c.positions);
    Plan {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        kind: kind.into(),
        format: Format::Kdoctor,
        origin: meta.origin,
        time_zone: None,
        schedule: c.schedule,
        rounds: c.rounds,
        round_timeout: c.round_timeout,
        agents: c.agents,
        pressure: c.pressure,
        expect: c.expect,
        mode,
    }
}

pub(crate) fn app_http_healthy(cx: &mut Cx, meta: Meta, spec: &mut Fields) -> Option<Plan> {
    let before = cx.diags.error_count();
    let mut request = spec.map(cx, "request");
    let common = common(cx, spec, request.as_mut(), MAX_QPS_APP_HTTP, true, "AppHttpHealthy");
    if let Some(mut r) = request {
        r.finish(cx);
    }
    let target = match spec.required(cx, "target") {
        Some(n) => cx.fields(n, &spec.path_of("target")).and_then(|mut t| {
            let target = ahh_target(cx, &mut t);
            t.finish(cx);
            target
        }),
        None => None,
    };
    spec.ignore("sourceAgentNodeSelector");
    spec.finish(cx);
    let (c, mut t) = (common?, target?);
    t.expect = c.expect.clone();
    if cx.diags.error_count() > before {
        return None;
    }
    Some(plan(
        meta,
        "AppHttpHealthy",
        c,
        Mode::Http(HttpPlan { targets: vec![t] }),
    ))
}

fn ahh_target(cx: &mut Cx, t: &mut Fields) -> Option<HttpTarget> {
    let before = cx.diags.error_count();
    let host = t.required(cx, "host").and_then(|n| {
        let path = t.path_of("host");
        let raw = cx.string(n, &path)?;
        if raw.trim() != raw {
            cx.diags
                .error(n.pos, &path, "the URL has spaces around it")
                .allowed("http(s)://HOST[:PORT][/PATH]");
            return None;
        }
        // kdoctor's mutating webhook: prefix http:// when the text has no "http" in it.
        let url = if raw.contains("http") {
            raw.clone()
        } else {
            format!("http://{raw}")
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                let host = u.host_str().unwrap_or("");
                let ok = if host.starts_with('[') {
                    true
                } else if host.contains('.') {
                    host.parse::<std::net::Ipv4Addr>().is_ok() || domain_ok(host)
                } else {
                    !host.is_empty()
                };
                if ok {
                    Some(url)
                } else {
                    cx.diags
                        .error(
                            n.pos,
                            &path,
                            format!("`{host}` is neither a domain name nor an IP address"),
                        )
                        .allowed("http(s)://DOMAIN, IPv4 or [IPv6] with an optional port and path");
                    None
                }
            }
            Ok(u) => {
                cx.diags
                    .error(n.pos, &path, format!("scheme `{}` is not HTTP", u.scheme()))
                    .allowed("http:// or https://");
                None
            }
            Err(e) => {
                cx.diags
                    .error(n.pos, &path, format!("`{raw}` is not a valid URL: {e}"))
                    .allowed("http(s)://HOST[:PORT][/PATH]");
                None
            }
        }
    });
    let method = match t.required(cx, "method") {
        Some(n) => match cx.one_of(n, &t.path_of("method"), METHODS) {
            Some("CONNECT") => {
                cx.diags
                    .error(
                        n.pos,
                        &t.path_of("method"),
                        "CONNECT opens a tunnel and has no answer to judge; kpatrol does not send it",
                    )
                    .allowed("GET, POST, PUT, DELETE, OPTIONS, PATCH, HEAD");
                None
            }
            m => m,
        },
        None => None,
    };
    let http2 = t.bool(cx, "http2").unwrap_or(false);
    let _latency_metric = t.bool(cx, "enableLatencyMetric");
    let mut headers = Vec::new();
    if let Some(items) = t.list(cx, "header") {
        let path = t.path_of("header");
        for (i, item) in items.iter().enumerate() {
            let hpath = format!("{path}[{i}]");
            if let Some(s) = cx.string(item, &hpath)
                && let Some(h) = header_line(cx, &s, item.pos, &hpath)
            {
                headers.push(h);
            }
        }
    }
    let body_name = field_name(cx, t, "bodyConfigmapName", NameRule::Object);
    let body_ns = field_name(cx, t, "bodyConfigmapNamespace", NameRule::Namespace);
    let body = match (body_name, body_ns) {
        (Some(name), Some(namespace)) => Body::ConfigMapJson { name, namespace },
        (Some(_), None) if !t.has("bodyConfigmapNamespace") => {
            cx.diags.error(
                t.pos_of("bodyConfigmapName"),
                &t.path_of("bodyConfigmapNamespace"),
                "required when bodyConfigmapName is set",
            );
            Body::None
        }
        _ => Body::None,
    };
    let tls_name = field_name(cx, t, "tlsSecretName", NameRule::Object);
    let tls_ns = field_name(cx, t, "tlsSecretNamespace", NameRule::Namespace);
    let tls = match (tls_name, tls_ns) {
        (Some(name), Some(_)) => Tls {
            secret: Some(name),
            verify_only_with_ca: true,
            ..Default::default()
        },
        (Some(_), None) if !t.has("tlsSecretNamespace") => {
            cx.diags.error(
                t.pos_of("tlsSecretName"),
                &t.path_of("tlsSecretNamespace"),
                "required when tlsSecretName is set",
            );
            Tls::default()
        }
        _ => Tls::default(),
    };
    if cx.diags.error_count() > before {
        return None;
    }
    let url = host?;
    Some(HttpTarget {
        name: "HttpAppHealthy target".into(),
        url,
        method: method?.to_string(),
        headers,
        body,
        tls,
        // kdoctor's http2 configures h2 over TLS only; plain http stays HTTP/1.1.
        version: if http2 { HttpVersion::Auto } else { HttpVersion::Http1 },
        // Go's client follows up to 10 redirects.
        redirects: 10,
        expect: Expect::default(),
    })
}

/// kdoctor's domain rule: `^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*\.[a-zA-Z]{2,}$`.
fn domain_ok(host: &str) -> bool {
    let Some((rest, tld)) = host.rsplit_once('.') else {
        return false;
    };
    tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && rest
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

pub(crate) fn net_reach(cx: &mut Cx, meta: Meta, spec: &mut Fields) -> Option<Plan> {
    cx.diags.warn(
        meta.origin.name_pos,
        "kind",
        "NetReach is valid, but its mode (reach, the mesh) cannot run or render in this version",
    );
    let mut request = spec.map(cx, "request");
    let common = common(cx, spec, request.as_mut(), MAX_QPS_NET_REACH, true, "NetReach");
    if let Some(mut r) = request {
        r.finish(cx);
    }
    let reach = match spec.map(cx, "target") {
        Some(mut t) => {
            let r = ReachPlan {
                ipv4: t.bool(cx, "ipv4").unwrap_or(true),
                ipv6: t.bool(cx, "ipv6").unwrap_or(false),
                endpoint: t.bool(cx, "endpoint").unwrap_or(true),
                multus_interface: t.bool(cx, "multusInterface").unwrap_or(false),
                cluster_ip: t.bool(cx, "clusterIP").unwrap_or(true),
                node_port: t.bool(cx, "nodePort").unwrap_or(true),
                load_balancer: t.bool(cx, "loadBalancer").unwrap_or(false),
                ingress: t.bool(cx, "ingress").unwrap_or(false),
            };
            let _ = t.bool(cx, "enableLatencyMetric");
            t.finish(cx);
            r
        }
        // the webhook's defaults with both families enabled, as the chart ships
        None => ReachPlan {
            ipv4: true,
            ipv6: true,
            endpoint: true,
            multus_interface: false,
            cluster_ip: true,
            node_port: true,
            load_balancer: false,
            ingress: false,
        },
    };
    spec.ignore("sourceAgentNodeSelector");
    spec.finish(cx);
    Some(plan(meta, "NetReach", common?, Mode::Reach(reach)))
}

pub(crate) fn net_dns(cx: &mut Cx, meta: Meta, spec: &mut Fields) -> Option<Plan> {
    let before = cx.diags.error_count();
    let mut request = spec.map(cx, "request");
    let common = common(cx, spec, request.as_mut(), MAX_QPS_NET_DNS, false, "Netdns");
    let (domain, protocol) = match request {
        Some(mut r) => {
            let domain = match r.get("domain") {
                Some(n) => named(cx, n, &r.path_of("domain"), NameRule::Host).unwrap_or_default(),
                None => "kubernetes.default.svc.cluster.local".into(),
            };
            let protocol = match r.one_of(cx, "protocol", &["udp", "tcp", "tcp-tls"]) {
                Some("tcp") => DnsProtocol::Tcp,
                Some("tcp-tls") => DnsProtocol::Tls,
                _ => DnsProtocol::Udp,
            };
            r.finish(cx);
            (domain, protocol)
        }
        None => (String::new(), DnsProtocol::Udp),
    };
    let mut targets = Vec::new();
    if let Some(n) = spec.required(cx, "target")
        && let Some(mut t) = cx.fields(n, &spec.path_of("target"))
    {
        let _ = t.bool(cx, "enableLatencyMetric");
        let user = t.map(cx, "targetUser");
        let dns = t.map(cx, "targetDns");
        if user.is_some() && dns.is_some() {
            cx.diags
                .error(t.pos, &t.path, "`targetUser` and `targetDns` exclude each other")
                .allowed("one of targetUser, targetDns");
        }
        if let Some(mut u) = user {
            let port = u.int(cx, "port").unwrap_or(53);
            if !(1..=65535).contains(&port) {
                cx.diags
                    .error(u.pos_of("port"), &u.path_of("port"), format!("port {port}"))
                    .allowed("1–65535");
            }
            let server = u.required(cx, "server").and_then(|n| {
                let path = u.path_of("server");
                let s = cx.string(n, &path)?;
                match s.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        cx.diags
                            .error(n.pos, &path, format!("`{s}` is not an IP address"))
                            .allowed("an IPv4 or IPv6 address (kdoctor does not resolve names here)");
                        None
                    }
                }
            });
            u.finish(cx);
            if let Some(ip) = server {
                let addr = SocketAddr::new(ip, port.clamp(1, 65535) as u16);
                let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
                // kdoctor's name; the record type follows the server's family
                targets.push((format!("type{rtype}_{addr}_{domain}"), DnsServer::Address(addr), None));
            }
        }
        if let Some(mut d) = dns {
            let name = d.str(cx, "serviceName");
            let namespace = d.str(cx, "serviceNamespace");
            let ipv4 = d.bool(cx, "testIPv4").unwrap_or(true);
            let ipv6 = d.bool(cx, "testIPv6").unwrap_or(false);
            if name.is_some() && namespace.is_none() {
                cx.diags.error(
                    d.pos_of("serviceName"),
                    &d.path_of("serviceNamespace"),
                    "required when serviceName is set",
                );
            }
            d.finish(cx);
            for (on, rtype) in [(ipv4, "A"), (ipv6, "AAAA")] {
                if on {
                    let ns = namespace.clone().unwrap_or_else(|| "kube-system".into());
                    let shown = match &name {
                        Some(n) => format!("{n}.{ns}:53"),
                        None => "cluster-dns:53".into(),
                    };
                    targets.push((
                        format!("type{rtype}_{shown}_{domain}"),
                        DnsServer::ClusterService {
                            name: name.clone(),
                            namespace: ns,
                            ipv4: rtype == "A",
                            ipv6: rtype == "AAAA",
                        },
                        Some(rtype.to_string()),
                    ));
                }
            }
        }
        t.finish(cx);
    }
    spec.ignore("sourceAgentNodeSelector");
    spec.finish(cx);
    if cx.diags.error_count() > before {
        return None;
    }
    let common = common?;
    let targets = targets
        .into_iter()
        .map(|(name, server, record_type)| DnsTarget {
            name,
            server,
            protocol,
            queries: vec![DnsQuery {
                name: domain.clone(),
                record_type,
            }],
            // miekg/dns queries as kdoctor sends them: recursion desired, no EDNS
            edns: false,
            // kdoctor's tcp-tls does not verify the server certificate
            tls: Tls {
                insecure_skip_verify: protocol == DnsProtocol::Tls,
                ..Default::default()
            },
            answers: AnswerCheck::default(),
            // any reply within the timeout is a success: no rcodes listed
            expect: common.expect.clone(),
        })
        .collect();
    Some(plan(meta, "Netdns", common, Mode::Dns(DnsPlan { targets })))
}
