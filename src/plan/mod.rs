//! The plan: a task resolved for running. Every default applied, every range and
//! cross-field rule checked, the command line's overrides included, native ([`native`]) and
//! kdoctor ([`kdoctor`]) tasks alike. Planning a raw `task::Task` is pure ([`plan`]);
//! [`load_str`] reads and plans a file's text. Running, rendering and judging read only the
//! plan.

pub mod kdoctor;
pub mod native;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics};
pub use crate::modes::Mode;
use crate::modes::dns::{RCODES, WRONG_ANSWER};
use crate::task::read::Cx;
pub use crate::task::{FileRef, Format, LoadError, Origin, Overrides};
use crate::task::{Kind, Spec, Task};
pub use schedule::Schedule;

/// The tasks of one file, planned, and every problem found in it.
#[derive(Debug, Default)]
pub struct FileTasks {
    pub plans: Vec<Plan>,
    pub diagnostics: Vec<Diagnostic>,
    /// Files the tasks name (body, TLS), for `task::check_files`.
    pub files: Vec<FileRef>,
}

/// Reads and plans one file, with no command-line overrides.
pub fn load_file(path: &Path) -> Result<FileTasks, LoadError> {
    load_file_with(path, &Overrides::default())
}

/// Reads and plans one file, the command line's overrides over every task's pressure.
pub fn load_file_with(path: &Path, overrides: &Overrides) -> Result<FileTasks, LoadError> {
    load_str_with(path, &crate::task::read_file(path)?, overrides)
}

/// Reads and plans every task document of `text`, which came from `path` (used in messages
/// and to resolve relative file names). Pure.
pub fn load_str(path: &Path, text: &str) -> Result<FileTasks, LoadError> {
    load_str_with(path, text, &Overrides::default())
}

/// [`load_str`] with the command line's overrides. Pure.
pub fn load_str_with(path: &Path, text: &str, overrides: &Overrides) -> Result<FileTasks, LoadError> {
    let docs = crate::task::parse(path, text)?;
    let mut diags = Diagnostics::new(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut plans = Vec::new();
    let mut files = Vec::new();
    for doc in &docs {
        let mut cx = Cx::new(&mut diags);
        let errors_before = cx.diags.error_count();
        let task = crate::task::read_doc(&mut cx, path, &doc.root, dir);
        let planned = task.and_then(|t| plan(&mut cx, t, overrides));
        // A document with any error yields no task, whichever stage found it.
        if let Some(mut p) = planned.filter(|_| cx.diags.error_count() == errors_before) {
            if !cx.as_text.is_empty() {
                crate::task::keep_text(&doc.root, &mut p.origin.document, &cx.as_text);
            }
            plans.push(p);
        }
        files.append(&mut cx.files);
    }
    Ok(FileTasks {
        plans,
        diagnostics: diags.list,
        files,
    })
}

/// The namespace a task runs in: its own, else the one `-n` names, else `kpatrol`.
fn namespace(own: Option<String>, overrides: &Overrides) -> String {
    own.or_else(|| overrides.namespace.clone())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

/// Where tasks that name no namespace run.
pub const DEFAULT_NAMESPACE: &str = "kpatrol";

/// Plans one task as read: defaults, ranges and cross-field rules, with `overrides` over its
/// pressure; every problem goes to `cx`. Pure.
pub fn plan(cx: &mut Cx, task: Task, overrides: &Overrides) -> Option<Plan> {
    match (task.kind, task.spec) {
        (Kind::Native(k), Spec::Native(spec)) => native::plan(cx, task.meta, k, spec, overrides),
        (Kind::AppHttpHealthy, Spec::Kdoctor(spec)) => kdoctor::app_http_healthy(cx, task.meta, &spec, overrides),
        (Kind::NetReach, Spec::Kdoctor(spec)) => kdoctor::net_reach(cx, task.meta, &spec, overrides),
        (Kind::Netdns, Spec::Kdoctor(spec)) => kdoctor::net_dns(cx, task.meta, &spec, overrides),
        // read_doc reads a kind's spec in the kind's format
        _ => None,
    }
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
    /// A floor on successful attempts per second (DiskCheck's throughput and IOPS).
    pub min_rate: Option<MinRate>,
}

/// A floor on the rate of successful attempts, over the time the target was pressed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MinRate {
    /// Units per second.
    pub per_second: f64,
    pub unit: RateUnit,
}

/// What a [`MinRate`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Bytes, each successful attempt moving this many (a throughput).
    Bytes(u64),
    /// Successful attempts (I/O operations per second).
    Ops,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeKind {
    #[default]
    Http,
    Dns,
    Tcp,
    Disk,
    Sql,
}

impl CodeKind {
    /// `200` for HTTP; `NOERROR`, `NXDOMAIN`, `WRONG_ANSWER` for DNS; `connected`, `replied` for TCP; `queried` for SQL.
    pub fn name(self, code: u16) -> String {
        match self {
            CodeKind::Tcp => crate::modes::tcp::code_name(code),
            CodeKind::Disk => crate::modes::disk::code_name(code),
            CodeKind::Sql => crate::modes::sql::code_name(code),
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
            CodeKind::Dns | CodeKind::Tcp | CodeKind::Disk | CodeKind::Sql if r.from == r.to => self.name(r.from),
            CodeKind::Dns | CodeKind::Tcp | CodeKind::Disk | CodeKind::Sql => {
                format!("{}-{}", self.name(r.from), self.name(r.to))
            }
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
    /// `self` over `base`, limit by limit.
    pub fn over(&self, base: &LatencyLimits) -> LatencyLimits {
        LatencyLimits {
            mean: self.mean.or(base.mean),
            p50: self.p50.or(base.p50),
            p90: self.p90.or(base.p90),
            p95: self.p95.or(base.p95),
            p99: self.p99.or(base.p99),
            max: self.max.or(base.max),
        }
    }

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
