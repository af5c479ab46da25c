//! kdoctor `kdoctor.io/v1beta1` specs as written (AppHttpHealthy, NetReach, Netdns): the
//! blocks every kind shares (`schedule`, `request`, `expect`, `agentSpec`) read into
//! [`Spec`], the kind's `target` kept as a spanned node. Shape and types only: kdoctor's
//! defaults (its CRD's and its webhook's) and rules are `crate::plan::kdoctor`'s.

use std::collections::BTreeMap;

use super::Kind;
use super::k8s::NameRule;
use super::read::{Cx, Field, Fields, named, to_json};
use super::yaml::Node;
use crate::diag::Pos;

/// A kdoctor spec as written.
pub struct Spec {
    pub pos: Pos,
    pub path: String,
    pub schedule: Field<Schedule>,
    pub request: Field<Request>,
    pub expect: Field<Expect>,
    /// `None` when absent.
    pub agent_spec: Option<AgentSpec>,
    /// The kind's `target`, read by its planner; `None` when absent.
    pub target: Option<Node>,
}

/// `spec.schedule`.
pub struct Schedule {
    pub pos: Pos,
    pub path: String,
    pub schedule: Field<String>,
    pub round_timeout_minute: Field<i64>,
    pub round_number: Field<i64>,
}

/// `spec.request`: the pressure, and for Netdns what to ask.
pub struct Request {
    pub pos: Pos,
    pub path: String,
    pub qps: Field<i64>,
    pub duration_in_second: Field<i64>,
    pub per_request_timeout_in_ms: Field<i64>,
    /// Netdns only.
    pub domain: Field<String>,
    /// Netdns only: `udp`, `tcp` or `tcp-tls`.
    pub protocol: Field<&'static str>,
}

/// `spec.expect`.
pub struct Expect {
    pub success_rate: Field<f64>,
    pub mean_access_delay_in_ms: Field<i64>,
    pub status_code: Field<i64>,
}

/// `spec.agentSpec`.
pub struct AgentSpec {
    pub pos: Pos,
    pub path: String,
    pub annotation: BTreeMap<String, String>,
    pub host_network: bool,
    /// `DaemonSet` or `Deployment`.
    pub kind: Field<&'static str>,
    pub deployment_replicas: Field<i64>,
    pub termination_grace_period_minutes: Field<i64>,
    pub passthrough: BTreeMap<String, serde_json::Value>,
}

/// Reads a kdoctor spec of `kind`.
pub fn read(cx: &mut Cx, spec: &mut Fields, kind: Kind) -> Spec {
    let schedule = spec.field(cx, "schedule", |cx, n, path| {
        let mut s = cx.fields(n, path)?;
        let read = Schedule {
            pos: s.pos,
            path: s.path.clone(),
            schedule: match s.required(cx, "schedule") {
                Some(_) => s.field(cx, "schedule", |cx, n, path| cx.string(n, path)),
                None => Field::Invalid,
            },
            round_timeout_minute: s.field(cx, "roundTimeoutMinute", |cx, n, path| cx.int(n, path)),
            round_number: s.field(cx, "roundNumber", |cx, n, path| cx.int(n, path)),
        };
        s.finish(cx);
        Some(read)
    });
    let request = spec.field(cx, "request", |cx, n, path| {
        let mut r = cx.fields(n, path)?;
        let netdns = matches!(kind, Kind::Netdns);
        let read = Request {
            pos: r.pos,
            path: r.path.clone(),
            qps: r.field(cx, "qps", |cx, n, path| cx.int(n, path)),
            duration_in_second: r.field(cx, "durationInSecond", |cx, n, path| cx.int(n, path)),
            per_request_timeout_in_ms: r.field(cx, "perRequestTimeoutInMS", |cx, n, path| cx.int(n, path)),
            domain: match netdns {
                true => r.field(cx, "domain", |cx, n, path| named(cx, n, path, NameRule::Host)),
                false => Field::Absent,
            },
            protocol: match netdns {
                true => r.field(cx, "protocol", |cx, n, path| {
                    cx.one_of(n, path, &["udp", "tcp", "tcp-tls"])
                }),
                false => Field::Absent,
            },
        };
        r.finish(cx);
        Some(read)
    });
    let expect = spec.field(cx, "expect", |cx, n, path| {
        let mut e = cx.fields(n, path)?;
        let read = Expect {
            success_rate: e.field(cx, "successRate", |cx, n, path| cx.float(n, path)),
            mean_access_delay_in_ms: e.field(cx, "meanAccessDelayInMs", |cx, n, path| cx.int(n, path)),
            status_code: e.field(cx, "statusCode", |cx, n, path| cx.int(n, path)),
        };
        e.finish(cx);
        Some(read)
    });
    let agent_spec = spec.map(cx, "agentSpec").map(|mut a| {
        let mut passthrough = BTreeMap::new();
        for key in ["affinity", "env", "resources"] {
            if let Some(n) = a.get(key) {
                passthrough.insert(key.to_string(), to_json(n));
            }
        }
        let read = AgentSpec {
            pos: a.pos,
            path: a.path.clone(),
            annotation: a.string_map(cx, "annotation").unwrap_or_default(),
            host_network: a.bool(cx, "hostNetwork").unwrap_or(false),
            kind: a.field(cx, "kind", |cx, n, path| {
                cx.one_of(n, path, &["DaemonSet", "Deployment"])
            }),
            deployment_replicas: a.field(cx, "deploymentReplicas", |cx, n, path| cx.int(n, path)),
            termination_grace_period_minutes: a
                .field(cx, "terminationGracePeriodMinutes", |cx, n, path| cx.int(n, path)),
            passthrough,
        };
        a.finish(cx);
        read
    });
    let target = match kind {
        Kind::NetReach => spec.get("target").cloned(),
        _ => spec.required(cx, "target").cloned(),
    };
    spec.ignore("sourceAgentNodeSelector");
    spec.finish(cx);
    Spec {
        pos: spec.pos,
        path: spec.path.clone(),
        schedule,
        request,
        expect,
        agent_spec,
        target,
    }
}
