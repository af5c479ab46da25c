//! The plan: a task resolved for running. Every default applied, every cross-field rule
//! checked, native and kdoctor tasks alike. Building a plan is pure (`task` does it from
//! the spanned tree); running, rendering and judging read only the plan.

pub mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use crate::modes::Mode;
use crate::modes::dns::{RCODES, WRONG_ANSWER};
pub use schedule::Schedule;

/// Where a task came from, for messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    /// Line of the document's start.
    pub line: usize,
    /// Where `metadata.name` is.
    #[serde(skip)]
    pub name_pos: crate::diag::Pos,
    /// Where some fields are, for problems found after planning (rendering).
    #[serde(skip)]
    pub positions: std::collections::BTreeMap<String, crate::diag::Pos>,
    /// The task document as read, for the ConfigMap a pod reads it from.
    #[serde(skip)]
    pub document: serde_json::Value,
}

impl Origin {
    /// Where `field` is, or the task's name when not recorded.
    pub fn pos(&self, field: &str) -> crate::diag::Pos {
        self.positions.get(field).copied().unwrap_or(self.name_pos)
    }
}

/// The task file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `kpatrol.dev/v1`
    Native,
    /// `kdoctor.io/v1beta1`, with kdoctor's defaults and meaning.
    Kdoctor,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub kind: String,
    pub format: Format,
    pub origin: Origin,
    pub schedule: Schedule,
    /// The CronJob's time zone (IANA name), when given.
    pub time_zone: Option<String>,
    /// Number of rounds; -1 runs forever.
    pub rounds: i64,
    pub round_timeout: Duration,
    pub agents: Agents,
    pub pressure: Pressure,
    /// Expectations for the whole round (all targets together), checked when there are
    /// several targets; each target carries its own.
    pub expect: Expect,
    pub mode: Mode,
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where the agents run and how many there are.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agents {
    pub placement: Placement,
    pub host_network: bool,
    pub annotations: BTreeMap<String, String>,
    /// Kubernetes objects passed through to the pod as given (resources, affinity, env).
    pub passthrough: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    /// A fixed number of agents.
    Count(u32),
    /// One agent per matching node.
    PerNode { node_selector: BTreeMap<String, String> },
}

/// How hard and how long to press each target, per agent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pressure {
    pub rate: Rate,
    pub duration: Duration,
    pub timeout: Duration,
    pub connections: Connections,
    pub max_in_flight: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rate {
    /// Requests per second per target, sent open-loop.
    Fixed(f64),
    /// As fast as `max_in_flight` concurrent requests allow (closed loop).
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Connections {
    Reuse,
    Fresh,
}

/// What a round (or a target) must show to pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Expect {
    pub success_rate: Option<f64>,
    pub latency: LatencyLimits,
    /// Codes that count as success; empty means any answer counts.
    pub codes: Vec<CodeRange>,
    /// Fail when planned requests could not be sent in time.
    pub all_sent: bool,
    /// What the codes are: HTTP statuses or DNS rcodes (for names in messages).
    pub code_kind: CodeKind,
    /// Compare latencies in whole milliseconds, truncated (kdoctor's meaning).
    pub whole_ms: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeKind {
    #[default]
    Http,
    Dns,
}

impl CodeKind {
    /// `200` for HTTP; `NOERROR`, `NXDOMAIN`, `WRONG_ANSWER` for DNS.
    pub fn name(self, code: u16) -> String {
        match self {
            CodeKind::Http => code.to_string(),
            CodeKind::Dns if code == WRONG_ANSWER => "WRONG_ANSWER".into(),
            CodeKind::Dns => RCODES
                .iter()
                .find(|(_, c)| *c == code)
                .map(|(n, _)| n.to_string())
                .unwrap_or(format!("RCODE{code}")),
        }
    }

    /// A range as written in expectations.
    pub fn range(self, r: &CodeRange) -> String {
        match self {
            CodeKind::Http => r.to_string(),
            CodeKind::Dns if r.from == r.to => self.name(r.from),
            CodeKind::Dns => format!("{}-{}", self.name(r.from), self.name(r.to)),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyLimits {
    pub mean: Option<Duration>,
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
    pub p95: Option<Duration>,
    pub p99: Option<Duration>,
    pub max: Option<Duration>,
}

impl LatencyLimits {
    /// Each set limit with its name, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        [
            ("mean", self.mean),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p95", self.p95),
            ("p99", self.p99),
            ("max", self.max),
        ]
        .into_iter()
        .filter_map(|(n, d)| d.map(|d| (n, d)))
    }
}

/// An inclusive range of answer codes (HTTP status, DNS rcode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CodeRange {
    pub from: u16,
    pub to: u16,
}

impl CodeRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.from..=self.to).contains(&code)
    }
}

impl std::fmt::Display for CodeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else if self.from.is_multiple_of(100) && self.to == self.from + 99 {
            write!(f, "{}xx", self.from / 100)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl Plan {
    /// Whether rounds repeat on a schedule (a CronJob), rather than one round now (a Job).
    pub fn is_periodic(&self) -> bool {
        self.rounds != 1 && self.schedule != Schedule::Once
    }

    /// Each target's name and expectations, in task order.
    pub fn targets(&self) -> Vec<(&str, &Expect)> {
        self.mode.targets()
    }
}

/// Where TLS material comes from and whether the server is verified.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tls {
    pub ca: Option<FileRef>,
    pub cert: Option<FileRef>,
    pub key: Option<FileRef>,
    /// A Secret mounted in the pod holding any of `ca.crt`, `tls.crt`, `tls.key`.
    pub secret: Option<String>,
    pub insecure_skip_verify: bool,
    /// kdoctor's rule: verify the server only when the Secret holds `ca.crt`.
    pub verify_only_with_ca: bool,
    pub server_name: Option<String>,
}

/// A file given in the task, relative paths resolved against the task file's folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileRef {
    pub path: PathBuf,
    /// The field that named it, for messages.
    pub field: String,
    #[serde(skip)]
    pub pos: crate::diag::Pos,
}
