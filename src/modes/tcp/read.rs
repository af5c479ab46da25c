//! Reading a native `TcpCheck`'s targets (address, payload, expected reply); the rest of its
//! spec is the skeleton `plan::native` plans.
//!
//! A target's `expect` is either a string, the prefix its reply must start with (the short
//! form), or a mapping: the per-target expectations every kind has (`successRate`,
//! `latency`, `allSent`) and `reply`, that prefix.

use std::path::Path;

use super::plan::*;
use crate::diag::Pos;
use crate::modes::Mode;
use crate::plan::native::{ExpectSpec, expect};
use crate::plan::{CodeKind, CodeRange};
use crate::task::k8s::host_problem;
use crate::task::read::{Cx, Fields, target_list, target_name};
use crate::task::yaml::{Node, Value};

/// What `address` allows, in every message about it.
pub const ADDRESS_ALLOWED: &str =
    "HOST:PORT with a port 1–65535, e.g. kube-dns.kube-system:53, 10.0.0.1:443, [::1]:8080";

/// Why an address is not `HOST:PORT`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("`{0}` has no port")]
    NoPort(String),
    #[error("`{0}` is an IPv6 address without brackets, so it has no port: write [ADDRESS]:PORT")]
    Ipv6Bare(String),
    #[error("`{0}` has no host before the port")]
    NoHost(String),
    #[error("`{0}` is an IPv6 address with a port, which needs brackets: [{host}]:{port}", host = .1, port = .2)]
    Brackets(String, String, String),
    #[error("`{0}` is not an IPv6 address in brackets")]
    NotIpv6(String),
    #[error("`{0}` is not a port number")]
    NotPort(String),
    #[error("port {0} is out of range")]
    PortRange(String),
    #[error("`{0}` is not a valid host name: {1}")]
    Host(String, String),
}

/// `HOST:PORT` or `[IPv6]:PORT` into the host (IPv6 without brackets) and the port. Pure.
pub fn parse_address(text: &str) -> Result<(String, u16), AddressError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(AddressError::NotIpv6(s.into()));
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddressError::NotIpv6(format!("[{inside}]")));
        }
        match after.strip_prefix(':') {
            Some(port) => (inside, port),
            None if after.is_empty() => return Err(AddressError::NoPort(s.into())),
            None => return Err(AddressError::NotPort(after.into())),
        }
    } else if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        // `10.0.0.1`, `::1`: an address alone
        return Err(if ip.is_ipv6() {
            AddressError::Ipv6Bare(s.into())
        } else {
            AddressError::NoPort(s.into())
        });
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(AddressError::NoPort(s.into()));
        };
        if host.contains(':') {
            return Err(AddressError::Brackets(s.into(), host.into(), port.into()));
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(AddressError::NoPort(s.into()));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::NotPort(port.into()));
    }
    let port = match port.parse::<u32>() {
        Ok(p @ 1..=65535) => p as u16,
        _ => return Err(AddressError::PortRange(port.into())),
    };
    if host.is_empty() {
        return Err(AddressError::NoHost(s.into()));
    }
    if let Some(p) = host_problem(host) {
        return Err(AddressError::Host(host.into(), p));
    }
    Ok((host.to_string(), port))
}

/// Reads and plans a native `TcpCheck`'s targets over the round's expectations.
pub(crate) fn tcp_targets(cx: &mut Cx, n: &Node, path: &str, base: &ExpectSpec, _: &Path) -> Option<Mode> {
    let targets = target_list(cx, n, path, |t: &TcpTarget| &t.name, |cx, f, _| tcp_target(cx, f, base))?;
    Some(Mode::Tcp(TcpPlan { targets }))
}

fn tcp_target(cx: &mut Cx, f: &mut Fields, base: &ExpectSpec) -> Option<TcpTarget> {
    let before = cx.diags.error_count();
    let name = target_name(cx, f);
    let address = f.required(cx, "address").and_then(|n| {
        let path = f.path_of("address");
        let text = cx.string(n, &path)?;
        match parse_address(&text) {
            Ok((host, port)) => Some((text, host, port)),
            Err(e) => {
                cx.diags.error(n.pos, &path, e.to_string()).allowed(ADDRESS_ALLOWED);
                None
            }
        }
    });
    let send = f.get("send").and_then(|n| {
        let path = f.path_of("send");
        let s = cx.scalar_string(n, &path)?;
        text_within(cx, &s, n.pos, &path, "payload", MAX_SEND, SEND_ALLOWED)
    });
    let close = match f.one_of(cx, "close", Close::NAMES) {
        Some("graceful") => Close::Graceful,
        _ => Close::Reset,
    };
    // `expect`: a reply prefix (a string), or expectations (a mapping) with `reply` among them
    let mut prefix = None;
    let own = match f.get("expect") {
        None => ExpectSpec::default(),
        Some(n) if matches!(n.value, Value::Map(_)) => {
            let mut e = cx.fields(n, &f.path_of("expect"))?;
            prefix = e.get("reply").and_then(|r| {
                let path = e.path_of("reply");
                let s = cx.scalar_string(r, &path)?;
                text_within(cx, &s, r.pos, &path, "reply prefix", MAX_PREFIX, PREFIX_ALLOWED)
            });
            expect(cx, &mut e, tcp_expect)
        }
        Some(n) if matches!(n.value, Value::Seq(_)) => {
            cx.diags
                .error(n.pos, &f.path_of("expect"), "expected a reply prefix or expectations, found a list")
                .allowed("a string the reply starts with, e.g. \"+PONG\", or a mapping: {reply, successRate, latency, allSent}");
            ExpectSpec::default()
        }
        Some(n) => {
            let path = f.path_of("expect");
            let s = cx.scalar_string(n, &path)?;
            prefix = text_within(cx, &s, n.pos, &path, "reply prefix", MAX_PREFIX, PREFIX_ALLOWED);
            ExpectSpec::default()
        }
    };
    f.finish(cx);
    if cx.diags.error_count() > before {
        return None;
    }
    let (address, host, port) = address?;
    let reply = match (&send, prefix) {
        (_, Some(p)) => Reply::Prefix(p),
        (Some(_), None) => Reply::Any,
        (None, None) => Reply::None,
    };
    // the one code this target's attempts answer with is its success
    let code = if reply == Reply::None { CONNECTED } else { REPLIED };
    let mut expect = own.over(base).resolve(CodeKind::Tcp);
    expect.codes = vec![CodeRange { from: code, to: code }];
    Some(TcpTarget {
        name: name.unwrap_or_else(|| address.clone()),
        address,
        host,
        port,
        send,
        reply,
        close,
        expect,
    })
}

const SEND_ALLOWED: &str = "text written once connected (YAML escapes such as \"PING\\r\\n\"), at most 65536 bytes; leave `send` out to only connect";
const PREFIX_ALLOWED: &str = "the text the reply starts with (YAML escapes such as \"+PONG\\r\\n\"), at most 1024 bytes; `send` without `expect` accepts any reply";

/// `s`, unless it is empty or longer than `max` bytes (reported at `pos` as `what`).
fn text_within(cx: &mut Cx, s: &str, pos: Pos, path: &str, what: &str, max: usize, allowed: &str) -> Option<String> {
    if s.is_empty() {
        cx.diags.error(pos, path, format!("the {what} is empty")).allowed(allowed);
        return None;
    }
    if s.len() > max {
        cx.diags
            .error(pos, path, format!("the {what} has {} bytes", s.len()))
            .allowed(allowed);
        return None;
    }
    Some(s.to_string())
}

/// A TcpCheck's own expectation fields: none (a reply prefix is a target's `expect.reply`).
pub(crate) fn tcp_expect(_: &mut Cx, _: &mut Fields, _: &mut ExpectSpec) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_into_host_and_port() {
        let ok = |s: &str| parse_address(s).unwrap();
        assert_eq!(ok("kube-dns.kube-system:53"), ("kube-dns.kube-system".into(), 53));
        assert_eq!(ok("10.0.0.1:443"), ("10.0.0.1".into(), 443));
        assert_eq!(ok("[::1]:8080"), ("::1".into(), 8080));
        assert_eq!(ok(" localhost:65535 "), ("localhost".into(), 65535));
        assert_eq!(ok("a:1"), ("a".into(), 1));
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        use AddressError as E;
        let cases: &[(&str, AddressError)] = &[
            ("", E::Empty),
            ("  ", E::Empty),
            ("kube-dns", E::NoPort("kube-dns".into())),
            ("kube-dns:", E::NoPort("kube-dns:".into())),
            ("10.0.0.1", E::NoPort("10.0.0.1".into())),
            ("::1", E::Ipv6Bare("::1".into())),
            ("::1:53", E::Ipv6Bare("::1:53".into())),
            ("[::1]", E::NoPort("[::1]".into())),
            ("[::1]x", E::NotPort("x".into())),
            ("[zz]:80", E::NotIpv6("[zz]".into())),
            ("[::1:80", E::NotIpv6("[::1:80".into())),
            ("fe80::1:443x", E::Brackets("fe80::1:443x".into(), "fe80::1".into(), "443x".into())),
            (":53", E::NoHost(":53".into())),
            ("a:http", E::NotPort("http".into())),
            ("a:-1", E::NotPort("-1".into())),
            ("a:0", E::PortRange("0".into())),
            ("a:65536", E::PortRange("65536".into())),
            ("a:99999999999999999999", E::PortRange("99999999999999999999".into())),
            ("a b:80", E::Host("a b".into(), "it contains ' '".into())),
            ("a..b:80", E::Host("a..b".into(), "it has an empty part (`..`, or a leading dot)".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address(text).as_ref(), Err(want), "{text:?}");
        }
        assert_eq!(
            E::Brackets("::1:53".into(), "::1".into(), "53".into()).to_string(),
            "`::1:53` is an IPv6 address with a port, which needs brackets: [::1]:53"
        );
    }
}
