//! Native `kpatrol.dev/v1` tasks: the common spec skeleton (schedule, rounds, agents,
//! pressure, expect) and the `HttpCheck` targets, read into a [`Plan`].

use std::path::Path;
use std::time::Duration;

use super::Meta;
use super::k8s::{self, NameRule};
use super::read::{Cx, Fields, join};
use super::yaml::{Node, Value};
use crate::duration::format_duration;
use crate::modes::dns::{AnswerCheck, RCODES};
use crate::plan::schedule::{self, Schedule};
use crate::plan::*;

/// Highest qps per target per agent a native task may ask for.
pub const MAX_QPS: f64 = 1_000_000.0;
pub const MAX_IN_FLIGHT: i64 = 65_536;
/// The smallest latency limit: a limit under it can never be met.
pub const MIN_LATENCY_LIMIT: Duration = Duration::from_micros(10);
/// What `pressure.qps` (and `--qps`) may be.
pub const QPS_ALLOWED: &str = "above 0 and at most 1000000, or `max`";
/// `pressure.duration` (and `--duration`): under a millisecond no slot leaves on time.
pub const DURATION_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(24 * 3600));
/// `pressure.timeout`.
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));

/// The pressure bounds, one set for task files and command-line overrides: why `qps` is
/// refused.
pub fn qps_problem(q: f64) -> Option<String> {
    (!(q > 0.0 && q <= MAX_QPS)).then(|| format!("qps {q} is out of range"))
}

/// Why a duration is outside `range`, and what is allowed.
pub fn duration_problem(d: Duration, range: (Duration, Duration)) -> Option<(String, String)> {
    (d < range.0 || d > range.1).then(|| {
        (
            format!("{} is out of range", format_duration(d)),
            format!("{} to {}", format_duration(range.0), format_duration(range.1)),
        )
    })
}

/// Why `maxInFlight` (and `--max-in-flight`) is refused.
pub fn max_in_flight_problem(m: i64) -> Option<String> {
    (!(1..=MAX_IN_FLIGHT).contains(&m)).then(|| format!("{m} is out of range (allowed: 1–{MAX_IN_FLIGHT})"))
}
/// Expectation fields as written; unset fields fall back to the enclosing level.
#[derive(Clone, Default)]
pub(crate) struct ExpectSpec {
    pub success_rate: Option<f64>,
    pub latency: LatencyLimits,
    pub codes: Option<Vec<CodeRange>>,
    pub all_sent: Option<bool>,
    /// DNS only: what answers must hold.
    pub answers: Option<AnswerCheck>,
}

impl ExpectSpec {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: &ExpectSpec) -> ExpectSpec {
        let l = &self.latency;
        let b = &base.latency;
        ExpectSpec {
            success_rate: self.success_rate.or(base.success_rate),
            latency: LatencyLimits {
                mean: l.mean.or(b.mean),
                p50: l.p50.or(b.p50),
                p90: l.p90.or(b.p90),
                p95: l.p95.or(b.p95),
                p99: l.p99.or(b.p99),
                max: l.max.or(b.max),
            },
            codes: self.codes.clone().or_else(|| base.codes.clone()),
            all_sent: self.all_sent.or(base.all_sent),
            answers: self.answers.clone().or_else(|| base.answers.clone()),
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
        }
    }
}

/// The skeleton of every native kind: the common fields, the round's expectations over the
/// kind's defaults, and the kind's targets read by `targets`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    cx: &mut Cx,
    meta: Meta,
    spec: &mut Fields,
    kind: &str,
    codes: CodeKind,
    default_codes: CodeRange,
    targets: impl FnOnce(&mut Cx, &Node, &str, &ExpectSpec) -> Option<Mode>,
) -> Option<Plan> {
    let common = common(cx, spec);
    let default_expect = ExpectSpec {
        success_rate: Some(1.0),
        codes: Some(vec![default_codes]),
        all_sent: Some(true),
        ..Default::default()
    };
    let round_expect = spec
        .map(cx, "expect")
        .map(|mut f| expect(cx, &mut f, codes))
        .unwrap_or_default()
        .over(&default_expect);
    let mode = match spec.required(cx, "targets") {
        Some(n) => targets(cx, n, &join(&spec.path, "targets"), &round_expect),
        None => None,
    };
    spec.finish(cx);
    let (common, mode) = (common?, mode?);
    let mut origin = meta.origin;
    // where a warning about the pressure (an agent too big for its pod) points
    let pressure_pos = if spec.has("pressure") {
        spec.pos_of("pressure")
    } else {
        spec.pos
    };
    origin.positions.insert("spec.pressure".into(), pressure_pos);
    Some(Plan {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        kind: kind.into(),
        format: Format::Native,
        origin,
        time_zone: common.time_zone,
        schedule: common.schedule,
        rounds: common.rounds,
        round_timeout: common.round_timeout,
        agents: common.agents,
        pressure: common.pressure,
        expect: round_expect.resolve(codes),
        mode,
    })
}

pub(crate) struct Common {
    pub time_zone: Option<String>,
    pub schedule: Schedule,
    pub rounds: i64,
    pub round_timeout: Duration,
    pub agents: Agents,
    pub pressure: Pressure,
}

/// The skeleton every native kind shares.
pub(crate) fn common(cx: &mut Cx, spec: &mut Fields) -> Option<Common> {
    let errors_before = cx.diags.error_count();
    let schedule = match spec.get("schedule") {
        Some(n) => {
            let path = spec.path_of("schedule");
            cx.string(n, &path).and_then(|s| match schedule::parse_native(&s) {
                Ok(s) => Some(s),
                Err(e) => {
                    cx.diags.error(n.pos, &path, e.message).allowed(e.allowed);
                    None
                }
            })
        }
        None => Some(Schedule::Once),
    };
    let time_zone = spec.str(cx, "timeZone");
    if let Some(tz) = &time_zone
        && !k8s::is_time_zone(tz)
    {
        cx.diags
            .error(
                spec.pos_of("timeZone"),
                &spec.path_of("timeZone"),
                format!("`{tz}` is not a time zone of the tz database"),
            )
            .allowed("an IANA time zone such as UTC, Europe/Berlin, America/New_York");
    }
    let rounds = spec.int(cx, "rounds");
    if let Some(r) = rounds {
        if r == 0 || r < -1 {
            cx.diags
                .error(
                    spec.pos_of("rounds"),
                    &spec.path_of("rounds"),
                    format!("{r} rounds would never run"),
                )
                .allowed("-1 (forever) or a number ≥ 1");
        } else if r > 1 && schedule == Some(Schedule::Once) {
            cx.diags
                .error(
                    spec.pos_of("rounds"),
                    &spec.path_of("rounds"),
                    format!("@once runs one round, not {r}"),
                )
                .allowed("1, or a repeating schedule");
        }
    }
    let rounds = rounds.unwrap_or(if schedule == Some(Schedule::Once) { 1 } else { -1 });

    let agents = spec
        .map(cx, "agents")
        .map(|mut f| agents(cx, &mut f))
        .unwrap_or(Some(Agents {
            placement: Placement::Count(1),
            host_network: false,
            annotations: Default::default(),
            passthrough: Default::default(),
        }));
    let pressure = match spec.map(cx, "pressure") {
        Some(mut f) => pressure(cx, &mut f),
        None => pressure(cx, &mut Fields::empty(spec.pos, &spec.path_of("pressure"))),
    };
    let round_timeout = spec.duration(cx, "roundTimeout");
    if let (Some(rt), Some(p)) = (round_timeout, &pressure) {
        let need = p.duration + p.timeout;
        if rt < need {
            cx.diags
                .error(
                    spec.pos_of("roundTimeout"),
                    &spec.path_of("roundTimeout"),
                    format!(
                        "round timeout {} is shorter than pressure.duration + pressure.timeout = {}",
                        format_duration(rt),
                        format_duration(need)
                    ),
                )
                .allowed(format!("at least {}", format_duration(need)));
        }
        if let Some(interval) = schedule.as_ref().and_then(|s| s.interval())
            && rt > interval
        {
            cx.diags.warn(
                spec.pos_of("roundTimeout"),
                &spec.path_of("roundTimeout"),
                format!(
                    "round timeout {} is longer than the schedule's interval {}: a slow round makes the next one skip",
                    format_duration(rt),
                    format_duration(interval)
                ),
            );
        }
    }
    let round_timeout = round_timeout.or_else(|| {
        pressure.as_ref().map(|p| {
            let s = (p.duration + p.timeout).as_secs() + 60;
            Duration::from_secs(s.div_ceil(60) * 60)
        })
    });
    if cx.diags.error_count() > errors_before {
        return None;
    }
    Some(Common {
        time_zone,
        schedule: schedule?,
        rounds,
        round_timeout: round_timeout?,
        agents: agents?,
        pressure: pressure?,
    })
}

fn agents(cx: &mut Cx, f: &mut Fields) -> Option<Agents> {
    let count = f.int(cx, "count");
    let per_node = f.map(cx, "perNode");
    let host_network = f.bool(cx, "hostNetwork").unwrap_or(false);
    let annotations = f.string_map(cx, "annotations").unwrap_or_default();
    let mut passthrough = std::collections::BTreeMap::new();
    for key in ["resources", "tolerations", "affinity", "env"] {
        if let Some(n) = f.get(key) {
            passthrough.insert(key.to_string(), to_json(n));
        }
    }
    let placement = match (count, per_node) {
        (Some(_), Some(_)) => {
            cx.diags
                .error(f.pos, &f.path, "`count` and `perNode` exclude each other")
                .allowed("one of count, perNode");
            None
        }
        (Some(c), None) if !(1..=10_000).contains(&c) => {
            cx.diags
                .error(f.pos_of("count"), &f.path_of("count"), format!("{c} agents"))
                .allowed("1–10000");
            None
        }
        (Some(c), None) => Some(Placement::Count(c as u32)),
        (None, Some(mut p)) => {
            let node_selector = labels(cx, &mut p, "nodeSelector").unwrap_or_default();
            p.finish(cx);
            Some(Placement::PerNode { node_selector })
        }
        (None, None) => Some(Placement::Count(1)),
    };
    f.finish(cx);
    Some(Agents {
        placement: placement?,
        host_network,
        annotations,
        passthrough,
    })
}

fn pressure(cx: &mut Cx, f: &mut Fields) -> Option<Pressure> {
    let mut ok = true;
    let rate = match f.get("qps") {
        None => Some(Rate::Fixed(10.0)),
        Some(n) if n.value == Value::Str("max".into()) => Some(Rate::Max),
        Some(n) => {
            let path = f.path_of("qps");
            match &n.value {
                Value::Int(_) | Value::Float(_) => cx.float(n, &path).and_then(|q| match qps_problem(q) {
                    None => Some(Rate::Fixed(q)),
                    Some(p) => {
                        cx.diags.error(n.pos, &path, p).allowed(QPS_ALLOWED);
                        None
                    }
                }),
                _ => {
                    cx.diags
                        .error(
                            n.pos,
                            &path,
                            format!("expected a number or `max`, found {}", n.type_name()),
                        )
                        .allowed(QPS_ALLOWED);
                    None
                }
            }
        }
    };
    let duration = bounded(cx, f, "duration", Duration::from_secs(10), DURATION_RANGE, &mut ok);
    let timeout = bounded(cx, f, "timeout", Duration::from_secs(1), TIMEOUT_RANGE, &mut ok);
    let connections = match f.one_of(cx, "connections", &["reuse", "fresh"]) {
        Some("fresh") => Connections::Fresh,
        Some(_) => Connections::Reuse,
        None if f.has("connections") => {
            ok = false;
            Connections::Reuse
        }
        None => Connections::Reuse,
    };
    let max_in_flight = match f.int(cx, "maxInFlight") {
        Some(m) => match max_in_flight_problem(m) {
            None => m as u32,
            Some(p) => {
                cx.diags.error(f.pos_of("maxInFlight"), &f.path_of("maxInFlight"), p);
                ok = false;
                0
            }
        },
        None => 256,
    };
    f.finish(cx);
    if !ok {
        return None;
    }
    Some(Pressure {
        rate: rate?,
        duration: duration?,
        timeout: timeout?,
        connections,
        max_in_flight,
    })
}

fn bounded(
    cx: &mut Cx,
    f: &mut Fields,
    key: &'static str,
    default: Duration,
    range: (Duration, Duration),
    ok: &mut bool,
) -> Option<Duration> {
    let present = f.get(key).is_some();
    match f.duration(cx, key) {
        Some(d) => match duration_problem(d, range) {
            None => Some(d),
            Some((problem, allowed)) => {
                cx.diags.error(f.pos_of(key), &f.path_of(key), problem).allowed(allowed);
                *ok = false;
                None
            }
        },
        None if present => {
            *ok = false;
            None
        }
        None => Some(default),
    }
}

pub(crate) fn expect(cx: &mut Cx, f: &mut Fields, kind: CodeKind) -> ExpectSpec {
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
        let lat = &mut e.latency;
        lat.mean = l.duration(cx, "mean");
        lat.p50 = l.duration(cx, "p50");
        lat.p90 = l.duration(cx, "p90");
        lat.p95 = l.duration(cx, "p95");
        lat.p99 = l.duration(cx, "p99");
        lat.max = l.duration(cx, "max");
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
                            "a latency limit of {} can never be met: no answer over a socket comes that fast",
                            format_duration(d)
                        ),
                    )
                    .allowed(format!("at least {}", format_duration(MIN_LATENCY_LIMIT)));
            }
        }
        l.finish(cx);
    }
    if kind == CodeKind::Dns {
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
        e.all_sent = f.bool(cx, "allSent");
        f.finish(cx);
        return e;
    }
    if let Some(items) = f.list(cx, "status") {
        let path = f.path_of("status");
        if items.is_empty() {
            cx.diags
                .error(
                    f.pos_of("status"),
                    &path,
                    "an empty list would count every status, 503 too, as a success",
                )
                .allowed("the statuses that count as success, e.g. [200] or [2xx]; leave `status` out for 2xx and 3xx");
        }
        let mut codes = Vec::new();
        for (i, n) in items.iter().enumerate() {
            if let Some(c) = code_range(cx, n, &format!("{path}[{i}]")) {
                codes.push(c);
            }
        }
        e.codes = Some(codes);
    }
    e.all_sent = f.bool(cx, "allSent");
    f.finish(cx);
    e
}

fn code_range(cx: &mut Cx, n: &Node, path: &str) -> Option<CodeRange> {
    const ALLOWED: &str = "a status code 100–599, a class such as 2xx, or a range such as 200-204";
    let parsed = match &n.value {
        Value::Int(c) => u16::try_from(*c).ok().map(|c| CodeRange { from: c, to: c }),
        Value::Str(s) => {
            let s = s.trim();
            if let Some(class) = s
                .strip_suffix("xx")
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (1..=5).contains(c))
            {
                Some(CodeRange {
                    from: class * 100,
                    to: class * 100 + 99,
                })
            } else if let Some((a, b)) = s.split_once('-') {
                match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    (Ok(a), Ok(b)) if a <= b => Some(CodeRange { from: a, to: b }),
                    _ => None,
                }
            } else {
                s.parse::<u16>().ok().map(|c| CodeRange { from: c, to: c })
            }
        }
        _ => None,
    };
    match parsed {
        Some(r) if r.from >= 100 && r.to <= 599 => Some(r),
        _ => {
            cx.diags.error(n.pos, path, "not a status code").allowed(ALLOWED);
            None
        }
    }
}

/// A list of targets read by `read`, at least one, their names unique.
pub(crate) fn target_list<T>(
    cx: &mut Cx,
    n: &Node,
    path: &str,
    name_of: impl Fn(&T) -> &str,
    mut read: impl FnMut(&mut Cx, &mut Fields, usize) -> Option<T>,
) -> Option<Vec<T>> {
    let items = cx.list(n, path)?;
    if items.is_empty() {
        cx.diags.error(n.pos, path, "at least one target is needed");
        return None;
    }
    let mut out: Vec<T> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut f) = cx.fields(item, &format!("{path}[{i}]")) else {
            ok = false;
            continue;
        };
        match read(cx, &mut f, i) {
            Some(t) if out.iter().any(|o| name_of(o) == name_of(&t)) => {
                cx.diags.error(
                    f.pos_of("name"),
                    &f.path_of("name"),
                    format!("target name `{}` is used twice", name_of(&t)),
                );
                ok = false;
            }
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A target's optional `name`; `round` is reserved for the whole round in reports.
pub(crate) fn target_name(cx: &mut Cx, f: &mut Fields) -> Option<String> {
    let name = f.str(cx, "name");
    if name.as_deref() == Some("round") {
        cx.diags
            .error(
                f.pos_of("name"),
                &f.path_of("name"),
                "`round` names the whole round in reports",
            )
            .allowed("any other name");
    }
    name
}

/// An absolute http or https URL with a host.
pub(crate) fn url(cx: &mut Cx, n: &Node, path: &str) -> Option<String> {
    let s = cx.string(n, path)?;
    match reqwest::Url::parse(&s) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Some(s)
        }
        Ok(u) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` has scheme `{}` or no host", u.scheme()))
                .allowed("http:// or https:// URLs with a host");
            None
        }
        Err(e) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` is not a valid URL: {e}"))
                .allowed("http:// or https:// URLs with a host");
            None
        }
    }
}

/// A string at `n` that must follow `rule` (it names a Kubernetes object, a key that becomes
/// a file name, a host); reported with the rule when it does not.
pub(crate) fn named(cx: &mut Cx, n: &Node, path: &str, rule: NameRule) -> Option<String> {
    let s = cx.string(n, path)?;
    match rule.problem(&s) {
        None => Some(s),
        Some(p) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` is not a valid {}: {p}", rule.what()))
                .allowed(rule.allowed());
            None
        }
    }
}

/// `key` of `f`, when present, read with [`named`].
pub(crate) fn field_name(cx: &mut Cx, f: &mut Fields, key: &'static str, rule: NameRule) -> Option<String> {
    let path = f.path_of(key);
    f.get(key).and_then(|n| named(cx, n, &path, rule))
}

/// A mapping of label keys to values (metadata labels, node selectors), each checked as the
/// API server checks labels.
pub(crate) fn labels(
    cx: &mut Cx,
    f: &mut Fields,
    key: &'static str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let map = f.string_map(cx, key)?;
    if let Some(Value::Map(entries)) = f.get(key).map(|n| &n.value) {
        for (k, v) in entries {
            let path = join(&f.path_of(key), &k.name);
            if let Some(p) = k8s::label_key_problem(&k.name) {
                cx.diags
                    .error(k.pos, &path, format!("`{}` is not a valid label key: {p}", k.name))
                    .allowed(k8s::LABEL_KEY_ALLOWED);
            }
            if let Some(value) = map.get(&k.name)
                && let Some(p) = k8s::label_value_problem(value)
            {
                cx.diags
                    .error(v.pos, &path, format!("`{value}` is not a valid label value: {p}"))
                    .allowed(k8s::LABEL_VALUE_ALLOWED);
            }
        }
    }
    Some(map)
}

pub(crate) fn file_ref(cx: &mut Cx, n: &Node, path: &str, task_dir: &Path) -> Option<FileRef> {
    let s = cx.string(n, path)?;
    if s.is_empty() {
        cx.diags.error(n.pos, path, "empty file name");
        return None;
    }
    let f = FileRef {
        path: task_dir.join(&s),
        field: path.to_string(),
        pos: n.pos,
    };
    cx.files.push(f.clone());
    Some(f)
}

pub(crate) fn tls(cx: &mut Cx, f: &mut Fields, task_dir: &Path) -> Tls {
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

/// A node as JSON, for Kubernetes objects passed through unchanged.
pub(crate) fn to_json(n: &Node) -> serde_json::Value {
    match &n.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Str(s) => s.clone().into(),
        Value::Seq(items) => items.iter().map(to_json).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.name.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
