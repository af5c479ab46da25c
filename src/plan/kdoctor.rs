//! kdoctor compatibility: `kdoctor.io/v1beta1` `AppHttpHealthy`, `NetReach` and `Netdns`
//! (read as written in `task::kdoctor`) planned with kdoctor's defaults (CRD defaults inside
//! present blocks, webhook defaults for absent blocks) and its admission rules, onto the
//! native plan with kdoctor's meaning. See `docs/kdoctor.md` for the field-by-field table.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::modes::dns::*;
use crate::modes::http::read::header_line;
use crate::modes::http::*;
use crate::modes::reach::{Peers, ReachPlan};
use crate::plan::schedule::{self, MAX_MINUTES, Schedule};
use crate::plan::*;
use crate::task::k8s::NameRule;
use crate::task::kdoctor as raw;
use crate::task::read::{At, Cx, Field, Fields, Spanned, field_name};
use crate::task::{Meta, Overrides};

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

/// Plans `spec.schedule`, `spec.agentSpec`, `spec.request` (qps, duration, timeout, with
/// the command line's overrides) and `spec.expect`. `max_qps` is the kind's limit;
/// `webhook_defaults` says whether absent blocks get the mutating webhook's values
/// (NetReach, AppHttpHealthy) or are required (Netdns).
fn common(
    cx: &mut Cx,
    spec: &raw::Spec,
    overrides: &Overrides,
    max_qps: i64,
    webhook_defaults: bool,
    kind: &str,
) -> Option<Common> {
    let before = cx.diags.error_count();
    // where a warning about the target (loopback in a pod) points
    let mut positions: Vec<(String, crate::diag::Pos)> =
        spec.target.iter().map(|t| ("spec.target".to_string(), t.pos)).collect();
    // schedule
    let (schedule, round_timeout_min, rounds) = match &spec.schedule {
        Field::Set(Spanned { value: s, .. }) => {
            let sched = s
                .schedule
                .spanned()
                .and_then(|text| match schedule::parse_kdoctor(&text.value) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        cx.error_at(&text.at, e.message).allowed(e.allowed);
                        None
                    }
                });
            if let Some(At::Field { pos, .. }) = s.schedule.spanned().map(|t| &t.at) {
                positions.push(("spec.schedule.schedule".to_string(), *pos));
            }
            let mut rt = s.round_timeout_minute.value().copied().unwrap_or(60);
            if let Some(at) = s.round_timeout_minute.spanned().map(|r| &r.at)
                && !(1..=MAX_MINUTES as i64).contains(&rt)
            {
                cx.error_at(at, format!("{rt} minutes"))
                    .allowed(format!("1–{MAX_MINUTES}"));
                rt = rt.clamp(1, MAX_MINUTES as i64);
            }
            let rounds = s.round_number.value().copied().unwrap_or(1);
            if let Some(at) = s.round_number.spanned().map(|r| &r.at)
                && (rounds == 0 || rounds < -1)
            {
                cx.error_at(at, format!("{rounds} rounds would never run"))
                    .allowed("-1 (forever) or a number ≥ 1");
            }
            if let Some(Schedule::Minutes { every_min, .. }) = &sched {
                if schedule::interval_cron(Duration::from_secs(every_min * 60)).is_none()
                    && let Some(text) = s.schedule.spanned()
                {
                    cx.warn_at(&text.at, format!(
                        "kdoctor takes every {every_min} minutes, but a CronJob cannot repeat it evenly: `kpatrol render` refuses it"
                    ));
                }
                if rt > *every_min as i64 {
                    let (pos, path) = match s.round_timeout_minute.spanned().map(|r| &r.at) {
                        Some(At::Field { pos, path }) => (*pos, path.clone()),
                        _ => (s.pos, format!("{}.roundTimeoutMinute", s.path)),
                    };
                    cx.diags
                        .error(pos, &path, format!(
                            "round timeout of {rt} minutes is longer than the schedule's interval of {every_min} minutes (kdoctor's rule; its default is 60)"
                        ))
                        .allowed(format!("1–{every_min}"));
                }
            }
            (sched, rt.max(1), rounds)
        }
        // present but not a mapping: already reported
        Field::Invalid => (None, 60, 1),
        Field::Absent if webhook_defaults => {
            // kdoctor's webhook default "0 1" with roundTimeoutMinute 60 fails its own rule.
            cx.diags
                .error(spec.pos, &format!("{}.schedule", spec.path), format!(
                    "{kind} without spec.schedule gets kdoctor's default \"0 1\" with roundTimeoutMinute 60, which kdoctor itself refuses (timeout longer than the interval)"
                ))
                .allowed("a schedule block such as {schedule: \"0 1\", roundTimeoutMinute: 1, roundNumber: 1}");
            (None, 60, 1)
        }
        Field::Absent => {
            cx.diags.error(
                spec.pos,
                &format!("{}.schedule", spec.path),
                "required field is missing",
            );
            (None, 60, 1)
        }
    };
    let round_timeout = Duration::from_secs(round_timeout_min as u64 * 60);

    // request: CRD defaults when present, webhook defaults when absent
    let (qps, duration_s, timeout_ms) = match &spec.request {
        Field::Set(Spanned { value: r, .. }) => {
            let qps = r.qps.value().copied().unwrap_or(5);
            let dur = r.duration_in_second.value().copied().unwrap_or(2);
            let to = r.per_request_timeout_in_ms.value().copied().unwrap_or(5);
            if r.per_request_timeout_in_ms.is_absent() {
                cx.diags.warn(
                    r.pos,
                    &format!("{}.perRequestTimeoutInMS", r.path),
                    "not set: kdoctor's CRD default is 5 ms, which most targets cannot meet",
                );
            }
            let at = |f: &Field<i64>, key: &str| match f.spanned() {
                Some(s) => s.at.clone(),
                None => At::Field {
                    pos: r.pos,
                    path: format!("{}.{key}", r.path),
                },
            };
            if qps < 1 || qps >= max_qps {
                cx.error_at(
                    &at(&r.qps, "qps"),
                    format!("{kind} requires qps {qps} within kdoctor's limit"),
                )
                .allowed(format!(
                    "1–{} (kdoctor's chart limit; use a native kind for more)",
                    max_qps - 1
                ));
            }
            if dur < 1 || dur > round_timeout_min * 60 {
                cx.error_at(
                    &at(&r.duration_in_second, "durationInSecond"),
                    format!("{dur} seconds does not fit the round timeout ({round_timeout_min} min)"),
                )
                .allowed(format!("1–{}", round_timeout_min * 60));
            }
            if to < 1 || to > round_timeout_min * 60_000 {
                cx.error_at(
                    &at(&r.per_request_timeout_in_ms, "perRequestTimeoutInMS"),
                    format!("{to} ms does not fit the round timeout ({round_timeout_min} min)"),
                )
                .allowed(format!("1–{}", round_timeout_min * 60_000));
            }
            (qps, dur, to)
        }
        Field::Invalid => (5, 2, 5),
        Field::Absent if webhook_defaults => (10, 2, 500),
        Field::Absent => {
            cx.diags
                .error(spec.pos, &format!("{}.request", spec.path), "required field is missing");
            (5, 2, 5)
        }
    };

    // expect
    let expect = match &spec.expect {
        Field::Set(Spanned { value: e, .. }) => {
            let rate = e.success_rate.value().copied().unwrap_or(1.0);
            if let Some(at) = e.success_rate.spanned().map(|r| &r.at)
                && !(0.0..=1.0).contains(&rate)
            {
                cx.error_at(at, format!("{rate} is not a ratio")).allowed("0–1");
            }
            let mean = e.mean_access_delay_in_ms.value().copied().unwrap_or(5000);
            if let Some(at) = e.mean_access_delay_in_ms.spanned().map(|m| &m.at)
                && mean < 1
            {
                cx.error_at(at, format!("{mean} ms")).allowed("1 or more");
            }
            let codes = match e.status_code.spanned() {
                Some(c) if (100..=599).contains(&c.value) => vec![CodeRange {
                    from: c.value as u16,
                    to: c.value as u16,
                }],
                Some(c) => {
                    cx.error_at(&c.at, format!("{} is not an HTTP status", c.value))
                        .allowed("100–599");
                    vec![]
                }
                None => vec![],
            };
            // The schema takes statusCode on every kind; only AppHttpHealthy uses it.
            let codes = if kind == "AppHttpHealthy" { codes } else { vec![] };
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
                min_rate: None,
            }
        }
        Field::Invalid => Expect::default(),
        Field::Absent if webhook_defaults => Expect {
            success_rate: Some(1.0),
            all_sent: true,
            whole_ms: true,
            ..Default::default()
        },
        Field::Absent => {
            cx.diags
                .error(spec.pos, &format!("{}.expect", spec.path), "required field is missing");
            Expect::default()
        }
    };

    let agents = agent_spec(cx, spec.agent_spec.as_ref());
    if cx.diags.error_count() > before {
        return None;
    }
    // in range now: qps below 100, duration and timeout within the round timeout
    let mut pressure = Pressure {
        rate: Rate::Fixed(qps as f64),
        duration: Duration::from_secs(duration_s as u64),
        timeout: Duration::from_millis(timeout_ms as u64),
        connections: Connections::Reuse,
        max_in_flight: (qps as u32).saturating_mul(10).max(64),
    };
    if !super::native::override_pressure(cx, &mut pressure, overrides) {
        return None;
    }
    Some(Common {
        positions,
        schedule: schedule?,
        rounds,
        round_timeout,
        agents: agents?,
        pressure,
        expect,
    })
}

fn agent_spec(cx: &mut Cx, spec: Option<&raw::AgentSpec>) -> Option<Agents> {
    let mut agents = Agents {
        placement: Placement::PerNode {
            node_selector: BTreeMap::new(),
        },
        host_network: false,
        annotations: BTreeMap::new(),
        passthrough: BTreeMap::new(),
    };
    let Some(a) = spec else {
        return Some(agents);
    };
    agents.annotations = a.annotation.clone();
    agents.host_network = a.host_network;
    agents.passthrough = a.passthrough.clone();
    if let Some(g) = a.termination_grace_period_minutes.spanned()
        && g.value < 0
    {
        cx.error_at(&g.at, format!("{} minutes", g.value)).allowed("0 or more");
    }
    if a.kind.value() == Some(&"Deployment") {
        match a.deployment_replicas.spanned() {
            Some(r) if (1..=MAX_AGENTS).contains(&r.value) => agents.placement = Placement::Count(r.value as u32),
            Some(r) if r.value > MAX_AGENTS => {
                cx.error_at(
                    &r.at,
                    format!(
                        "{} replicas: a round is one Indexed Job, and Kubernetes stops those at {MAX_AGENTS} pods",
                        r.value
                    ),
                )
                .allowed(format!("1–{MAX_AGENTS}"));
            }
            Some(r) => {
                cx.error_at(&r.at, format!("{} replicas run no agent", r.value))
                    .allowed("1 or more");
            }
            None => {
                cx.diags
                    .error(
                        a.pos,
                        &format!("{}.deploymentReplicas", a.path),
                        "a Deployment without deploymentReplicas runs no agent (kdoctor's template has replicas: 0)",
                    )
                    .allowed("1 or more");
            }
        }
    }
    Some(agents)
}

fn plan(mut meta: Meta, kind: &str, c: Common, mode: Mode, overrides: &Overrides) -> Plan {
    meta.origin.positions.extend(c.positions);
    Plan {
        name: meta.name,
        namespace: super::namespace(meta.namespace, overrides),
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

pub(crate) fn app_http_healthy(cx: &mut Cx, meta: Meta, spec: &raw::Spec, overrides: &Overrides) -> Option<Plan> {
    let before = cx.diags.error_count();
    let common = common(cx, spec, overrides, MAX_QPS_APP_HTTP, true, "AppHttpHealthy");
    let target = spec.target.as_ref().and_then(|n| {
        let mut t = cx.fields(n, &format!("{}.target", spec.path))?;
        let target = ahh_target(cx, &mut t);
        t.finish(cx);
        target
    });
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
        overrides,
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

pub(crate) fn net_reach(cx: &mut Cx, meta: Meta, spec: &raw::Spec, overrides: &Overrides) -> Option<Plan> {
    let common = common(cx, spec, overrides, MAX_QPS_NET_REACH, true, "NetReach");
    let target = spec
        .target
        .as_ref()
        .and_then(|n| cx.fields(n, &format!("{}.target", spec.path)));
    let reach = match target {
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
                peers: Peers::All,
                ingress_route: None,
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
            peers: Peers::All,
            ingress_route: None,
        },
    };
    Some(plan(meta, "NetReach", common?, Mode::Reach(reach), overrides))
}

pub(crate) fn net_dns(cx: &mut Cx, meta: Meta, spec: &raw::Spec, overrides: &Overrides) -> Option<Plan> {
    let before = cx.diags.error_count();
    let common = common(cx, spec, overrides, MAX_QPS_NET_DNS, false, "Netdns");
    let (domain, protocol) = match &spec.request {
        Field::Set(Spanned { value: r, .. }) => (
            match &r.domain {
                Field::Set(d) => d.value.clone(),
                Field::Invalid => String::new(),
                Field::Absent => "kubernetes.default.svc.cluster.local".into(),
            },
            match r.protocol.value() {
                Some(&"tcp") => DnsProtocol::Tcp,
                Some(&"tcp-tls") => DnsProtocol::Tls,
                _ => DnsProtocol::Udp,
            },
        ),
        _ => (String::new(), DnsProtocol::Udp),
    };
    let mut targets = Vec::new();
    if let Some(n) = &spec.target
        && let Some(mut t) = cx.fields(n, &format!("{}.target", spec.path))
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
                targets.push((
                    format!("type{rtype}_{addr}_{domain}"),
                    DnsServer::Address(addr),
                    None,
                    None,
                ));
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
                            // kdoctor queries the cluster DNS on 53 whatever the protocol
                            port: 53,
                        },
                        Some(rtype.to_string()),
                        // kdoctor's name holds the Service's address, found in the pod
                        Some((format!("type{rtype}_"), format!("_{domain}"))),
                    ));
                }
            }
        }
        t.finish(cx);
    }
    if cx.diags.error_count() > before {
        return None;
    }
    let common = common?;
    let targets = targets
        .into_iter()
        .map(|(name, server, record_type, named_after_server)| DnsTarget {
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
            named_after_server,
        })
        .collect();
    Some(plan(meta, "Netdns", common, Mode::Dns(DnsPlan { targets }), overrides))
}
