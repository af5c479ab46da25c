//! What a DNS round does: its targets, servers, queries and answer checks.

use serde::Serialize;

use crate::plan::{Expect, Tls};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsPlan {
    pub targets: Vec<DnsTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsTarget {
    pub name: String,
    pub server: DnsServer,
    pub protocol: DnsProtocol,
    /// Queries, spread round-robin over the target's rate.
    pub queries: Vec<DnsQuery>,
    /// Send an EDNS(0) OPT record (payload 1232).
    pub edns: bool,
    pub tls: Tls,
    /// What a NOERROR answer must hold to count as the expected answer.
    pub answers: AnswerCheck,
    pub expect: Expect,
    /// kdoctor's `targetDns`: once the Service's address is found (in the pod), the target
    /// is named `<prefix><address>:<port><suffix>` (`typeA_10.96.0.10:53_kubernetes.default`).
    pub named_after_server: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsQuery {
    pub name: String,
    /// Record type; `None` follows the server's address family (A for IPv4, AAAA for IPv6).
    pub record_type: Option<String>,
}

/// Per-query checks of an answer's records.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AnswerCheck {
    /// Each of these (an address or a name) must be among the answer records.
    pub contain: Vec<String>,
    /// At least this many answer records.
    pub min: u32,
}

impl AnswerCheck {
    pub fn is_active(&self) -> bool {
        !self.contain.is_empty() || self.min > 0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DnsServer {
    /// A Service's cluster IPs on `port`, found through the pod's resolver as
    /// `<name>.<namespace>.svc`; `name: None` means the pod's own cluster DNS (resolv.conf).
    ClusterService {
        name: Option<String>,
        namespace: String,
        ipv4: bool,
        ipv6: bool,
        /// 53, or 853 for a native task's DNS over TLS; kdoctor's `targetDns` is always 53.
        port: u16,
    },
    Address(std::net::SocketAddr),
    /// DNS over HTTPS: the endpoint URL.
    Url(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProtocol {
    Udp,
    Tcp,
    Tls,
    Https,
}

/// DNS response codes by name, as `rcodes` lists them.
pub const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// The answer code recorded when a NOERROR answer did not hold what [`AnswerCheck`] asks.
pub const WRONG_ANSWER: u16 = u16::MAX;

/// Record types a DNS query may ask for.
pub const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR", "NS", "SOA"];
