//! Reading a native `DnsCheck`'s targets (server or Service, protocol, queries, TLS, answer
//! checks); the rest of its spec is the skeleton `plan::native` plans.

use std::path::Path;

use super::plan::*;
use crate::modes::Mode;
use crate::plan::native::{ExpectSpec, expect, tls};
use crate::plan::{CodeKind, CodeRange};
use crate::task::k8s::NameRule;
use crate::task::read::{Cx, Fields, field_name, named, target_list, target_name, url};
use crate::task::yaml::Node;

/// Reads and plans a native `DnsCheck`'s targets over the round's expectations.
pub(crate) fn dns_targets(cx: &mut Cx, n: &Node, path: &str, base: &ExpectSpec, task_dir: &Path) -> Option<Mode> {
    let targets = target_list(
        cx,
        n,
        path,
        |t: &DnsTarget| &t.name,
        |cx, f, _| dns_target(cx, f, base, task_dir),
    )?;
    Some(Mode::Dns(DnsPlan { targets }))
}

const DNS_SERVER_ALLOWED: &str = "an IP address, optionally with a port: 10.96.0.10, 127.0.0.1:5353, ::1, [::1]:5353";

/// `10.96.0.10`, `10.96.0.10:5353`, `::1`, `[::1]:5353`.
fn server_addr(text: &str, default_port: u16) -> Option<std::net::SocketAddr> {
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Some(a);
    }
    text.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(ip, default_port))
}

fn dns_target(cx: &mut Cx, f: &mut Fields, base: &ExpectSpec, task_dir: &Path) -> Option<DnsTarget> {
    let before = cx.diags.error_count();
    let name = target_name(cx, f);
    let url = f.get("url").and_then(|n| url(cx, n, &f.path_of("url")));
    let protocol = match f.one_of(cx, "protocol", &["udp", "tcp", "tls", "https"]) {
        Some("tcp") => DnsProtocol::Tcp,
        Some("tls") => DnsProtocol::Tls,
        Some("https") => DnsProtocol::Https,
        Some(_) => DnsProtocol::Udp,
        None if url.is_some() => DnsProtocol::Https,
        None => DnsProtocol::Udp,
    };
    let default_port = if protocol == DnsProtocol::Tls { 853 } else { 53 };
    let server_text = f.str(cx, "server");
    let service = f.map(cx, "service").and_then(|mut s| {
        let name = s
            .required(cx, "name")
            .and_then(|n| named(cx, n, &s.path_of("name"), NameRule::Namespace));
        let namespace =
            field_name(cx, &mut s, "namespace", NameRule::Namespace).unwrap_or_else(|| "kube-system".into());
        s.finish(cx);
        Some(DnsServer::ClusterService {
            name: Some(name?),
            namespace,
            ipv4: true,
            ipv6: false,
            port: default_port,
        })
    });
    let given = [f.has("server"), f.has("service"), f.has("url")]
        .iter()
        .filter(|x| **x)
        .count();
    if given != 1 {
        cx.diags
            .error(
                f.pos,
                &f.path,
                if given == 0 {
                    "no server given"
                } else {
                    "`server`, `service` and `url` exclude each other"
                },
            )
            .allowed("one of server (an IP address), service ({name, namespace}), url (DNS over HTTPS)");
    }
    let server = if let Some(text) = &server_text {
        match server_addr(text, default_port) {
            Some(a) => Some(DnsServer::Address(a)),
            None => {
                cx.diags
                    .error(
                        f.pos_of("server"),
                        &f.path_of("server"),
                        format!("`{text}` is not an address"),
                    )
                    .allowed(DNS_SERVER_ALLOWED);
                None
            }
        }
    } else if let Some(s) = service {
        Some(s)
    } else {
        url.clone().map(DnsServer::Url)
    };
    if protocol == DnsProtocol::Https && url.is_none() && given == 1 {
        cx.diags
            .error(
                f.pos_of("protocol"),
                &f.path_of("protocol"),
                "DNS over HTTPS needs `url`",
            )
            .allowed("url: https://HOST/dns-query");
    }
    if url.is_some() && protocol != DnsProtocol::Https {
        cx.diags
            .error(f.pos_of("url"), &f.path_of("url"), "`url` is for DNS over HTTPS")
            .allowed("protocol: https");
    }
    let mut queries = Vec::new();
    if let Some(n) = f.required(cx, "queries") {
        let qpath = f.path_of("queries");
        if let Some(items) = cx.list(n, &qpath) {
            if items.is_empty() {
                cx.diags.error(n.pos, &qpath, "at least one query is needed");
            }
            for (i, item) in items.iter().enumerate() {
                let p = format!("{qpath}[{i}]");
                let Some(mut q) = cx.fields(item, &p) else { continue };
                let qname = q
                    .required(cx, "name")
                    .and_then(|n| named(cx, n, &q.path_of("name"), NameRule::Host));
                let rtype = q.one_of(cx, "type", RECORD_TYPES).unwrap_or("A");
                q.finish(cx);
                if let Some(qname) = qname {
                    queries.push(DnsQuery {
                        name: qname,
                        record_type: Some(rtype.to_string()),
                    });
                }
            }
        }
    }
    let edns = f.bool(cx, "edns").unwrap_or(true);
    let tls = f
        .map(cx, "tls")
        .map(|mut t| tls(cx, &mut t, task_dir))
        .unwrap_or_default();
    if f.has("tls") && !matches!(protocol, DnsProtocol::Tls | DnsProtocol::Https) {
        cx.diags
            .error(f.pos_of("tls"), &f.path_of("tls"), "TLS settings without TLS")
            .allowed("protocol: tls or https");
    }
    if protocol == DnsProtocol::Tls && tls.server_name.is_none() && !tls.insecure_skip_verify {
        cx.diags
            .error(
                f.pos,
                &f.path_of("tls.serverName"),
                "DNS over TLS needs the server's name to verify its certificate",
            )
            .allowed("tls: {serverName: dns.example}, or tls: {insecureSkipVerify: true}");
    }
    let spec = f
        .map(cx, "expect")
        .map(|mut e| expect(cx, &mut e, dns_expect))
        .unwrap_or_default()
        .over(base);
    f.finish(cx);
    if cx.diags.error_count() > before {
        return None;
    }
    let server = server?;
    let name = name.unwrap_or_else(|| match &server {
        DnsServer::Address(a) => format!("{}://{a}", format!("{protocol:?}").to_lowercase()),
        DnsServer::Url(u) => u.clone(),
        DnsServer::ClusterService { name, namespace, .. } => {
            format!("{}.{namespace}", name.clone().unwrap_or_default())
        }
    });
    Some(DnsTarget {
        named_after_server: None,
        name,
        server,
        protocol,
        queries,
        edns,
        tls,
        answers: spec.answers.clone().unwrap_or_default(),
        expect: spec.resolve(CodeKind::Dns),
    })
}

/// A DnsCheck's own expectations: `rcodes` (by name) and `answers` (what the answer
/// records must hold).
pub(crate) fn dns_expect(cx: &mut Cx, f: &mut Fields, e: &mut ExpectSpec) {
    if let Some(items) = f.list(cx, "rcodes") {
        let path = f.path_of("rcodes");
        let mut codes = Vec::new();
        let names: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
        if items.is_empty() {
            cx.diags
                .error(
                    f.pos_of("rcodes"),
                    &path,
                    "an empty list would count every reply as a success",
                )
                .allowed("the rcodes that count as success, e.g. [NOERROR]; leave `rcodes` out for any reply");
        }
        for (i, n) in items.iter().enumerate() {
            if let Some(&(_, c)) = cx
                .one_of(n, &format!("{path}[{i}]"), &names)
                .and_then(|name| RCODES.iter().find(|(n, _)| *n == name))
            {
                codes.push(CodeRange { from: c, to: c });
            }
        }
        e.codes = Some(codes);
    }
    if let Some(mut a) = f.map(cx, "answers") {
        let mut check = AnswerCheck::default();
        if let Some(items) = a.list(cx, "contain") {
            let path = a.path_of("contain");
            for (i, n) in items.iter().enumerate() {
                if let Some(s) = cx.scalar_string(n, &format!("{path}[{i}]")) {
                    check.contain.push(s);
                }
            }
        }
        if let Some(m) = a.int(cx, "min") {
            if (0..=1000).contains(&m) {
                check.min = m as u32;
            } else {
                cx.diags
                    .error(a.pos_of("min"), &a.path_of("min"), format!("{m} answers"))
                    .allowed("0–1000");
            }
        }
        a.finish(cx);
        e.answers = Some(check);
    }
}
