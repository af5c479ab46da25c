//! Native `kpatrol.dev/v1` specs as written: the skeleton every native kind shares
//! (schedule, rounds, agents, pressure) read into [`Spec`], with the kind's `expect` and
//! `targets` kept as spanned nodes for its mode to read (their codes and fields are the
//! mode's own). Shape and types only; defaults and rules are `crate::plan::native`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Qps;
use super::k8s;
use super::read::{Cx, Field, Fields, labels, to_json};
use super::yaml::{Node, Value};
use crate::diag::Pos;

/// What `pressure.qps` (and `--qps`) may be.
pub const QPS_ALLOWED: &str = "above 0 and at most 1000000, or `max`";

/// A native spec as written.
pub struct Spec {
    /// Where `spec` is, and its field path.
    pub pos: Pos,
    pub path: String,
    /// The task file's folder, against which files named in targets resolve.
    pub dir: PathBuf,
    pub schedule: Field<String>,
    /// A zone of the tz database (checked here: it is the name's own rule).
    pub time_zone: Field<String>,
    pub rounds: Field<i64>,
    pub round_timeout: Field<Duration>,
    pub agents: Field<Agents>,
    pub pressure: Pressure,
    /// The round's expectations, read by the kind's mode.
    pub expect: Option<Node>,
    /// The targets, read by the kind's mode; `None` when missing (already reported).
    pub targets: Option<Node>,
}

/// `spec.agents` as written.
pub struct Agents {
    pub pos: Pos,
    pub path: String,
    pub count: Field<i64>,
    /// `perNode.nodeSelector`, when `perNode` is given.
    pub per_node: Option<BTreeMap<String, String>>,
    pub host_network: bool,
    pub annotations: BTreeMap<String, String>,
    /// Kubernetes objects passed through to the pod as given (resources, affinity, env).
    pub passthrough: BTreeMap<String, serde_json::Value>,
}

/// `spec.pressure` as written (empty when absent).
pub struct Pressure {
    pub pos: Pos,
    pub qps: Field<Qps>,
    pub duration: Field<Duration>,
    pub timeout: Field<Duration>,
    /// `reuse` or `fresh`.
    pub connections: Field<&'static str>,
    pub max_in_flight: Field<i64>,
}

/// Reads a native spec's shared skeleton; the kind's own fields stay nodes.
pub fn read(cx: &mut Cx, spec: &mut Fields, dir: &Path) -> Spec {
    let schedule = spec.field(cx, "schedule", |cx, n, path| cx.string(n, path));
    let time_zone = spec.field(cx, "timeZone", |cx, n, path| {
        let tz = cx.string(n, path)?;
        if k8s::is_time_zone(&tz) {
            return Some(tz);
        }
        cx.diags
            .error(n.pos, path, format!("`{tz}` is not a time zone of the tz database"))
            .allowed("an IANA time zone such as UTC, Europe/Berlin, America/New_York");
        None
    });
    let rounds = spec.field(cx, "rounds", |cx, n, path| cx.int(n, path));
    let round_timeout = spec.field(cx, "roundTimeout", |cx, n, path| cx.duration(n, path));
    let agents = spec.field(cx, "agents", |cx, n, path| {
        let mut f = cx.fields(n, path)?;
        let a = agents(cx, &mut f);
        f.finish(cx);
        Some(a)
    });
    let pressure = match spec.map(cx, "pressure") {
        Some(mut f) => {
            let p = pressure(cx, &mut f);
            f.finish(cx);
            p
        }
        None => pressure(cx, &mut Fields::empty(spec.pos, &spec.path_of("pressure"))),
    };
    let expect = spec.get("expect").cloned();
    let targets = spec.required(cx, "targets").cloned();
    spec.finish(cx);
    Spec {
        pos: spec.pos,
        path: spec.path.clone(),
        dir: dir.to_path_buf(),
        schedule,
        time_zone,
        rounds,
        round_timeout,
        agents,
        pressure,
        expect,
        targets,
    }
}

fn agents(cx: &mut Cx, f: &mut Fields) -> Agents {
    let count = f.field(cx, "count", |cx, n, path| cx.int(n, path));
    let per_node = f.map(cx, "perNode").map(|mut p| {
        let node_selector = labels(cx, &mut p, "nodeSelector").unwrap_or_default();
        p.finish(cx);
        node_selector
    });
    let host_network = f.bool(cx, "hostNetwork").unwrap_or(false);
    let annotations = f.string_map(cx, "annotations").unwrap_or_default();
    let mut passthrough = BTreeMap::new();
    for key in ["resources", "tolerations", "affinity", "env"] {
        if let Some(n) = f.get(key) {
            passthrough.insert(key.to_string(), to_json(n));
        }
    }
    Agents {
        pos: f.pos,
        path: f.path.clone(),
        count,
        per_node,
        host_network,
        annotations,
        passthrough,
    }
}

fn pressure(cx: &mut Cx, f: &mut Fields) -> Pressure {
    let qps = f.field(cx, "qps", |cx, n, path| match &n.value {
        Value::Str(s) if s == "max" => Some(Qps::Max),
        Value::Int(_) | Value::Float(_) => cx.float(n, path).map(Qps::PerSecond),
        _ => {
            cx.diags
                .error(
                    n.pos,
                    path,
                    format!("expected a number or `max`, found {}", n.type_name()),
                )
                .allowed(QPS_ALLOWED);
            None
        }
    });
    let duration = f.field(cx, "duration", |cx, n, path| cx.duration(n, path));
    let timeout = f.field(cx, "timeout", |cx, n, path| cx.duration(n, path));
    let connections = f.field(cx, "connections", |cx, n, path| cx.one_of(n, path, &["reuse", "fresh"]));
    let max_in_flight = f.field(cx, "maxInFlight", |cx, n, path| cx.int(n, path));
    Pressure {
        pos: f.pos,
        qps,
        duration,
        timeout,
        connections,
        max_in_flight,
    }
}
