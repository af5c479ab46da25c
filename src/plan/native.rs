//! Planning native `kpatrol.dev/v1` tasks: the shared skeleton's defaults and rules
//! (schedule, rounds, round timeout, agents, pressure with the command line's overrides),
//! the round's expectations over the kind's defaults, and the kind's targets through its
//! mode. Also what several kinds' targets read the same way: expectations and TLS.

use std::path::Path;
use std::time::Duration;

use crate::duration::format_duration;
use crate::modes::NativeKind;
use crate::modes::dns::AnswerCheck;
use crate::plan::schedule::{self, Schedule};
use crate::plan::*;
use crate::task::k8s::NameRule;
use crate::task::native::{self as raw, QPS_ALLOWED};
use crate::task::read::{Cx, Field, Fields, Spanned, field_name, file_ref};
use crate::task::{Meta, Overrides, Qps};

/// Highest qps per target per agent a native task may ask for.
pub const MAX_QPS: f64 = 1_000_000.0;
pub const MAX_IN_FLIGHT: i64 = 65_536;
/// The smallest latency limit: a limit under it can never be met.
pub const MIN_LATENCY_LIMIT: Duration = Duration::from_micros(10);
/// `pressure.duration` (and `--duration`): under a millisecond no slot leaves on time.
pub const DURATION_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(24 * 3600));
/// `pressure.timeout`.
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));

/// Expectation fields as written; unset fields fall back to the enclosing level.
#[derive(Clone, Default)]
pub struct ExpectSpec {
    pub success_rate: Option<f64>,
    pub latency: LatencyLimits,
    pub codes: Option<Vec<CodeRange>>,
    pub all_sent: Option<bool>,
    /// DNS only: what answers must hold.
    pub answers: Option<AnswerCheck>,
    /// DiskCheck only: each measure's own expectations.
    pub disk: crate::modes::disk::DiskExpect,
}

impl ExpectSpec {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: &ExpectSpec) -> ExpectSpec {
        ExpectSpec {
            success_rate: self.success_rate.or(base.success_rate),
            latency: self.latency.over(&base.latency),
            codes: self.codes.clone().or_else(|| base.codes.clone()),
            all_sent: self.all_sent.or(base.all_sent),
            answers: self.answers.clone().or_else(|| base.answers.clone()),
            disk: self.disk.over(&base.disk),
        }
    }

    pub fn resolve(&self, code_kind: CodeKind) -> Expect {
        Expect {
            success_rate: self.success_rate,
            latency: self.latency.clone(),
            codes: self.codes.clone().unwrap_or_default(),
            all_sent: self.all_sent.unwrap_or(true),
            code_kind,
            whole_ms: false,
            min_rate: None,
        }
    }
}

/// Plans a native task of `kind`: the skeleton, the round's expectations over the kind's
/// defaults, and the targets its mode reads.
pub(crate) fn plan(cx: &mut Cx, meta: Meta, kind: NativeKind, spec: raw::Spec, overrides: &Overrides) -> Option<Plan> {
    let common = common(cx, &spec, overrides);
    let default_expect = ExpectSpec {
        success_rate: Some(1.0),
        codes: Some(vec![kind.default_codes]),
        all_sent: Some(true),
        ..Default::default()
    };
    let round_expect = match &spec.expect {
        Some(n) => cx
            .fields(n, &format!("{}.expect", spec.path))
            .map(|mut f| expect(cx, &mut f, kind.expect))
            .unwrap_or_default(),
        None => ExpectSpec::default(),
    }
    .over(&default_expect);
    let mode = spec
        .targets
        .as_ref()
        .and_then(|n| (kind.targets)(cx, n, &format!("{}.targets", spec.path), &round_expect, &spec.dir));
    if kind.one_at_a_time {
        one_at_a_time(cx, kind.kind, &spec.pressure, overrides);
    }
    let (mut common, mode) = (common?, mode?);
    if kind.one_at_a_time {
        common.pressure.rate = Rate::Max;
        common.pressure.max_in_flight = 1;
    }
    let mut origin = meta.origin;
    // where a warning about the pressure (an agent too big for its pod) points
    origin.positions.insert("spec.pressure".into(), spec.pressure.pos);
    // and one about a target (loopback in a pod)
    if let Some(t) = spec.targets {
        origin.positions.insert("spec.targets".into(), t.pos);
    }
    Some(Plan {
        name: meta.name,
        namespace: super::namespace(meta.namespace, overrides),
        labels: meta.labels,
        kind: kind.kind.into(),
        format: Format::Native,
        origin,
        time_zone: common.time_zone,
        schedule: common.schedule,
        rounds: common.rounds,
        round_timeout: common.round_timeout,
        agents: common.agents,
        pressure: common.pressure,
        expect: round_expect.resolve(kind.codes),
        mode,
    })
}

/// A kind that measures one attempt at a time takes no `qps` or `maxInFlight`, from the
/// task or the command line: refused where set.
fn one_at_a_time(cx: &mut Cx, kind: &str, p: &raw::Pressure, overrides: &Overrides) {
    let allowed =
        "leave pressure.qps and pressure.maxInFlight out: each measure runs for its share of pressure.duration";
    for at in [p.qps.spanned().map(|q| &q.at), overrides.qps.spanned().map(|q| &q.at)]
        .into_iter()
        .flatten()
    {
        cx.error_at(
            at,
            format!("{kind} measures as fast as the disk answers, one I/O at a time: it takes no qps"),
        )
        .allowed(allowed);
    }
    for at in [
        p.max_in_flight.spanned().map(|m| &m.at),
        overrides.max_in_flight.spanned().map(|m| &m.at),
    ]
    .into_iter()
    .flatten()
    {
        cx.error_at(at, format!("{kind} keeps one I/O in flight: it takes no maxInFlight"))
            .allowed(allowed);
    }
}

struct Common {
    time_zone: Option<String>,
    schedule: Schedule,
    rounds: i64,
    round_timeout: Duration,
    agents: Agents,
    pressure: Pressure,
}

/// The skeleton every native kind shares, with the command line's overrides over it.
fn common(cx: &mut Cx, spec: &raw::Spec, overrides: &Overrides) -> Option<Common> {
    let errors_before = cx.diags.error_count();
    let schedule = match &spec.schedule {
        Field::Set(s) => match schedule::parse_native(&s.value) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                cx.error_at(&s.at, e.message).allowed(e.allowed);
                None
            }
        },
        Field::Absent => Some(Schedule::Once),
        Field::Invalid => None,
    };
    let once = schedule == Some(Schedule::Once);
    if let Some(r) = spec.rounds.spanned() {
        let n = r.value;
        if n == 0 || n < -1 {
            cx.error_at(&r.at, format!("{n} rounds would never run"))
                .allowed("-1 (forever) or a number ≥ 1");
        } else if n > 1 && once {
            cx.error_at(&r.at, format!("@once runs one round, not {n}"))
                .allowed("1, or a repeating schedule");
        }
    }
    let rounds = spec.rounds.value().copied().unwrap_or(if once { 1 } else { -1 });
    let agents = match &spec.agents {
        Field::Set(a) => agents(cx, &a.value),
        Field::Absent => Some(Agents {
            placement: Placement::Count(1),
            host_network: false,
            annotations: Default::default(),
            passthrough: Default::default(),
        }),
        Field::Invalid => None,
    };
    let pressure = pressure(cx, &spec.pressure, overrides);
    let round_timeout = spec.round_timeout.spanned();
    if let (Some(rt), Some(p)) = (round_timeout, &pressure) {
        let need = p.duration + p.timeout;
        if rt.value < need {
            cx.error_at(
                &rt.at,
                format!(
                    "round timeout {} is shorter than pressure.duration + pressure.timeout = {}",
                    format_duration(rt.value),
                    format_duration(need)
                ),
            )
            .allowed(format!("at least {}", format_duration(need)));
        }
        if let Some(interval) = schedule.as_ref().and_then(|s| s.interval())
            && rt.value > interval
        {
            cx.warn_at(
                &rt.at,
                format!(
                    "round timeout {} is longer than the schedule's interval {}: a slow round makes the next one skip",
                    format_duration(rt.value),
                    format_duration(interval)
                ),
            );
        }
    }
    // by default a round may take its pressure and timeout, and a minute, in whole minutes
    let round_timeout = round_timeout.map(|rt| rt.value).or_else(|| {
        pressure.as_ref().map(|p| {
            let s = (p.duration + p.timeout).as_secs() + 60;
            Duration::from_secs(s.div_ceil(60) * 60)
        })
    });
    if cx.diags.error_count() > errors_before || spec.round_timeout == Field::Invalid || spec.rounds == Field::Invalid {
        return None;
    }
    Some(Common {
        time_zone: spec.time_zone.value().cloned(),
        schedule: schedule?,
        rounds,
        round_timeout: round_timeout?,
        agents: agents?,
        pressure: pressure?,
    })
}

fn agents(cx: &mut Cx, a: &raw::Agents) -> Option<Agents> {
    let placement = match (&a.count, &a.per_node) {
        (Field::Invalid, _) => None,
        (Field::Set(_), Some(_)) => {
            cx.diags
                .error(a.pos, &a.path, "`count` and `perNode` exclude each other")
                .allowed("one of count, perNode");
            None
        }
        (Field::Set(c), None) if !(1..=10_000).contains(&c.value) => {
            cx.error_at(&c.at, format!("{} agents", c.value)).allowed("1–10000");
            None
        }
        (Field::Set(c), None) => Some(Placement::Count(c.value as u32)),
        (Field::Absent, Some(node_selector)) => Some(Placement::PerNode {
            node_selector: node_selector.clone(),
        }),
        (Field::Absent, None) => Some(Placement::Count(1)),
    };
    Some(Agents {
        placement: placement?,
        host_network: a.host_network,
        annotations: a.annotations.clone(),
        passthrough: a.passthrough.clone(),
    })
}

/// The pressure as written, each field replaced by its command-line override when given,
/// checked against one set of bounds and defaulted.
fn pressure(cx: &mut Cx, p: &raw::Pressure, overrides: &Overrides) -> Option<Pressure> {
    let qps = p.qps.clone().or_over(overrides.qps.clone());
    let duration = p.duration.clone().or_over(overrides.duration.clone());
    let max_in_flight = p.max_in_flight.clone().or_over(overrides.max_in_flight.clone());
    let rate = match &qps {
        Field::Set(q) => checked_rate(cx, q),
        Field::Absent => Some(Rate::Fixed(10.0)),
        Field::Invalid => None,
    };
    let duration = match &duration {
        Field::Set(d) => checked_duration(cx, d, DURATION_RANGE),
        Field::Absent => Some(Duration::from_secs(10)),
        Field::Invalid => None,
    };
    let timeout = match &p.timeout {
        Field::Set(d) => checked_duration(cx, d, TIMEOUT_RANGE),
        Field::Absent => Some(Duration::from_secs(1)),
        Field::Invalid => None,
    };
    let connections = match &p.connections {
        Field::Set(c) if c.value == "fresh" => Some(Connections::Fresh),
        Field::Invalid => None,
        _ => Some(Connections::Reuse),
    };
    let max_in_flight = match &max_in_flight {
        Field::Set(m) => checked_max_in_flight(cx, m),
        Field::Absent => Some(256),
        Field::Invalid => None,
    };
    Some(Pressure {
        rate: rate?,
        duration: duration?,
        timeout: timeout?,
        connections: connections?,
        max_in_flight: max_in_flight?,
    })
}

/// Applies the command line's overrides to a pressure planned from a kdoctor task, with the
/// native bounds (the flags mean the same whatever the task's format). `false` when one is
/// refused (reported).
pub(crate) fn override_pressure(cx: &mut Cx, p: &mut Pressure, overrides: &Overrides) -> bool {
    let mut ok = true;
    if let Some(q) = overrides.qps.spanned() {
        match checked_rate(cx, q) {
            Some(r) => p.rate = r,
            None => ok = false,
        }
    }
    if let Some(d) = overrides.duration.spanned() {
        match checked_duration(cx, d, DURATION_RANGE) {
            Some(d) => p.duration = d,
            None => ok = false,
        }
    }
    if let Some(m) = overrides.max_in_flight.spanned() {
        match checked_max_in_flight(cx, m) {
            Some(m) => p.max_in_flight = m,
            None => ok = false,
        }
    }
    ok
}

fn checked_rate(cx: &mut Cx, q: &Spanned<Qps>) -> Option<Rate> {
    match q.value {
        Qps::Max => Some(Rate::Max),
        Qps::PerSecond(v) if v > 0.0 && v <= MAX_QPS => Some(Rate::Fixed(v)),
        Qps::PerSecond(v) => {
            cx.error_at(&q.at, format!("qps {v} is out of range"))
                .allowed(QPS_ALLOWED);
            None
        }
    }
}

fn checked_duration(cx: &mut Cx, d: &Spanned<Duration>, range: (Duration, Duration)) -> Option<Duration> {
    if d.value < range.0 || d.value > range.1 {
        cx.error_at(&d.at, format!("{} is out of range", format_duration(d.value)))
            .allowed(format!("{} to {}", format_duration(range.0), format_duration(range.1)));
        return None;
    }
    Some(d.value)
}

fn checked_max_in_flight(cx: &mut Cx, m: &Spanned<i64>) -> Option<u32> {
    if !(1..=MAX_IN_FLIGHT).contains(&m.value) {
        cx.error_at(&m.at, format!("{} is out of range", m.value))
            .allowed(format!("1–{MAX_IN_FLIGHT}"));
        return None;
    }
    Some(m.value as u32)
}

/// A mode's own expectation fields (its answer codes, its answer checks), read into the
/// expectations as written.
pub type OwnExpect = fn(&mut Cx, &mut Fields, &mut ExpectSpec);

/// Expectations as written at one level (the round's, or a target's): success rate, latency
/// limits and allSent, and the mode's own fields through `own`.
pub fn expect(cx: &mut Cx, f: &mut Fields, own: OwnExpect) -> ExpectSpec {
    let mut e = ExpectSpec::default();
    if let Some(r) = f.float(cx, "successRate") {
        if (0.0..=1.0).contains(&r) {
            e.success_rate = Some(r);
        } else {
            cx.diags
                .error(
                    f.pos_of("successRate"),
                    &f.path_of("successRate"),
                    format!("{r} is not a ratio"),
                )
                .allowed("0.0–1.0, e.g. 0.999");
        }
    }
    if let Some(mut l) = f.map(cx, "latency") {
        e.latency = latency_limits(cx, &mut l);
        l.finish(cx);
    }
    own(cx, f, &mut e);
    e.all_sent = f.bool(cx, "allSent");
    f.finish(cx);
    e
}

/// The latency limits of one mapping (`mean`, `p50`, `p90`, `p95`, `p99`, `max`), each
/// at least [`MIN_LATENCY_LIMIT`]; other keys are the caller's to read.
pub fn latency_limits(cx: &mut Cx, l: &mut Fields) -> LatencyLimits {
    let lat = LatencyLimits {
        mean: l.duration(cx, "mean"),
        p50: l.duration(cx, "p50"),
        p90: l.duration(cx, "p90"),
        p95: l.duration(cx, "p95"),
        p99: l.duration(cx, "p99"),
        max: l.duration(cx, "max"),
    };
    for (key, limit) in [
        ("mean", lat.mean),
        ("p50", lat.p50),
        ("p90", lat.p90),
        ("p95", lat.p95),
        ("p99", lat.p99),
        ("max", lat.max),
    ] {
        if let Some(d) = limit
            && d < MIN_LATENCY_LIMIT
        {
            cx.diags
                .error(
                    l.pos_of(key),
                    &l.path_of(key),
                    format!(
                        "a latency limit of {} can never be met: no attempt is measured that fast",
                        format_duration(d)
                    ),
                )
                .allowed(format!("at least {}", format_duration(MIN_LATENCY_LIMIT)));
        }
    }
    lat
}

pub fn tls(cx: &mut Cx, f: &mut Fields, task_dir: &Path) -> Tls {
    let ca = f.get("ca").and_then(|n| file_ref(cx, n, &f.path_of("ca"), task_dir));
    let cert = f
        .get("cert")
        .and_then(|n| file_ref(cx, n, &f.path_of("cert"), task_dir));
    let key = f.get("key").and_then(|n| file_ref(cx, n, &f.path_of("key"), task_dir));
    let secret = field_name(cx, f, "secret", NameRule::Object);
    let insecure_skip_verify = f.bool(cx, "insecureSkipVerify").unwrap_or(false);
    let server_name = field_name(cx, f, "serverName", NameRule::Host);
    if cert.is_some() != key.is_some() {
        cx.diags
            .error(f.pos, &f.path, "a client certificate needs both `cert` and `key`")
            .allowed("both cert and key, or neither");
    }
    if secret.is_some() && (ca.is_some() || cert.is_some()) {
        cx.diags
            .error(
                f.pos_of("secret"),
                &f.path_of("secret"),
                "`secret` and files (`ca`, `cert`, `key`) exclude each other",
            )
            .allowed("a Secret, or files");
    }
    if insecure_skip_verify && ca.is_some() {
        cx.diags.warn(
            f.pos_of("insecureSkipVerify"),
            &f.path_of("insecureSkipVerify"),
            "the CA is ignored when verification is skipped",
        );
    }
    f.finish(cx);
    Tls {
        ca,
        cert,
        key,
        secret,
        insecure_skip_verify,
        verify_only_with_ca: false,
        server_name,
    }
}
