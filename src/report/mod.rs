//! Reports of a judged round: the typed, versioned data every writer and reader shares.
//!
//! - [`RoundReport`]: the full report (`-o json`, a probe's stdout; `docs/report.md`).
//! - [`Summary`]: the bounded termination message a pod leaves (at most
//!   [`TERMINATION_LIMIT`] bytes), written by the probe (a round, or why it could not run)
//!   and by the launcher (its agents), read back by the launcher and by `kpatrol status` /
//!   `kpatrol report` through [`read_message`], which takes any text a pod may have left.
//!
//! Both carry [`SCHEMA_VERSION`] and share the judge's typed [`Check`]. They stay two
//! shapes: the full report does not fit 4 KiB for a few dozen targets, and the compact
//! form is what pods of earlier versions left.
//!
//! Also the human table of a round.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::judge::{Check, Outcome, Verdict, successes};
use crate::plan::Plan;
use crate::pressure::LatencySummary;
use crate::results::{RoundResult, TargetId};

/// Bump when a field changes meaning or disappears; adding fields keeps the version.
pub const SCHEMA_VERSION: u32 = 1;
/// Kubernetes keeps at most 4096 bytes of a termination message.
pub const TERMINATION_LIMIT: usize = 4096;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    pub schema_version: u32,
    pub task: String,
    pub namespace: String,
    pub kind: String,
    pub mode: String,
    pub verdict: Outcome,
    /// The round was cut short by Ctrl-C or SIGTERM.
    pub stopped: bool,
    /// RFC 3339, UTC.
    pub started: String,
    pub duration_seconds: f64,
    pub targets: Vec<TargetReport>,
    pub checks: Vec<Check>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub name: TargetId,
    /// Slots planned at a fixed rate; absent at the maximum rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    pub sent: u64,
    pub unsent: u64,
    pub answered: u64,
    pub failed: u64,
    pub succeeded: u64,
    pub success_rate: f64,
    /// Attempts sent per second over the sending window.
    pub rate: f64,
    /// Answer code (HTTP status) → count.
    pub codes: BTreeMap<String, u64>,
    /// Error kind → count (timeout, refused, reset, dns, tls, protocol, truncated, other).
    pub errors: BTreeMap<String, u64>,
    /// Error kind → one example message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_samples: BTreeMap<String, String>,
    /// Latency of answered attempts, in milliseconds, measured from the intended send time;
    /// null when nothing was answered.
    pub latency_ms: Option<LatencySummary>,
}

/// Builds the report of a judged round.
pub fn build(plan: &Plan, round: &RoundResult, verdict: &Verdict) -> RoundReport {
    let secs = round.elapsed.as_secs_f64().max(1e-9);
    // the sending window: the task's duration, or less when the round was stopped
    let window = round.elapsed.min(plan.pressure.duration).as_secs_f64().max(1e-3);
    let expects = plan.targets();
    let targets = round
        .targets
        .iter()
        // every result is of one of the plan's targets
        .filter_map(|t| Some((t, expects.iter().find(|(n, _)| t.id == *n)?.1)))
        .map(|(t, e)| {
            let s = &t.stats;
            let ok = successes(e, s);
            TargetReport {
                name: t.id.clone(),
                planned: t.planned,
                sent: s.sent,
                unsent: s.unsent,
                answered: s.answered(),
                failed: s.failed(),
                succeeded: ok,
                success_rate: if s.sent == 0 { 0.0 } else { ok as f64 / s.sent as f64 },
                rate: (s.sent as f64 / window * 10.0).round() / 10.0,
                codes: s.codes.iter().map(|(c, n)| (e.code_kind.name(*c), *n)).collect(),
                errors: s
                    .errors()
                    .into_iter()
                    .map(|(k, n)| (k.as_str().to_string(), n))
                    .collect(),
                error_samples: t
                    .error_samples
                    .iter()
                    .map(|(k, m)| (k.as_str().to_string(), m.clone()))
                    .collect(),
                latency_ms: (s.answered() > 0).then(|| s.summary()),
            }
        })
        .collect();
    let started: chrono::DateTime<chrono::Utc> = round.started_at.into();
    RoundReport {
        schema_version: SCHEMA_VERSION,
        task: plan.name.clone(),
        namespace: plan.namespace.clone(),
        kind: plan.kind.clone(),
        mode: plan.mode.name().into(),
        verdict: verdict.outcome,
        stopped: round.stopped,
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_seconds: (secs * 1000.0).round() / 1000.0,
        targets,
        checks: verdict.checks.clone(),
    }
}

/// Milliseconds with three decimals, as a JSON number.
fn ms3(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64).round() / 1000.0
}

fn ms(d: std::time::Duration) -> String {
    crate::duration::format_duration(std::time::Duration::from_micros(d.as_micros() as u64))
}

/// The human table: one summary line per target, then every check.
pub fn table(r: &RoundReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}/{} ({:.1}s{})",
        r.kind,
        r.namespace,
        r.task,
        r.duration_seconds,
        if r.stopped { ", stopped early" } else { "" }
    );
    for t in &r.targets {
        let errors = if t.errors.is_empty() {
            "no errors".to_string()
        } else {
            t.errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let codes = t
            .codes
            .iter()
            .map(|(c, n)| format!("{c}×{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let latency = match &t.latency_ms {
            Some(l) => format!(
                "latency p50 {} p90 {} p99 {} max {}",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            ),
            None => "no answers".into(),
        };
        let answered = if t.answered == 0 {
            "answered 0".to_string()
        } else {
            format!("answered {} [{codes}]", t.answered)
        };
        let _ = writeln!(
            out,
            "  {}: sent {} ({:.1}/s), unsent {}, {answered}, {errors}; {latency}",
            t.name, t.sent, t.rate, t.unsent
        );
        for (kind, msg) in &t.error_samples {
            let _ = writeln!(out, "    {kind}: {msg}");
        }
    }
    let rows: Vec<[String; 5]> = std::iter::once([
        "TARGET".into(),
        "CHECK".into(),
        "OBSERVED".into(),
        "THRESHOLD".into(),
        "RESULT".into(),
    ])
    .chain(r.checks.iter().map(|c| {
        [
            c.subject.to_string(),
            c.measure.name(),
            c.observed.clone(),
            c.threshold.clone(),
            if c.pass { "pass".into() } else { "FAIL".into() },
        ]
    }))
    .collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push('\n');
    for row in &rows {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i == 4 {
                line += cell;
            } else {
                line += &format!("{cell}{}  ", " ".repeat(w - cell.chars().count()));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let failed = r.checks.iter().filter(|c| !c.pass).count();
    let _ = writeln!(
        out,
        "\nverdict: {} ({} checks, {} failed)",
        r.verdict.as_str().to_uppercase(),
        r.checks.len(),
        failed
    );
    out
}

/// What a termination message says of its round: `pass`, `fail`, or `error` (the round
/// could not run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundOutcome {
    Pass,
    Fail,
    Error,
}

impl RoundOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RoundOutcome::Pass => "pass",
            RoundOutcome::Fail => "fail",
            RoundOutcome::Error => "error",
        }
    }
}

impl From<Outcome> for RoundOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => RoundOutcome::Pass,
            Outcome::Fail => RoundOutcome::Fail,
        }
    }
}

/// The termination message: `{"v":1,"task","verdict",…}` and what its writer had to say
/// (see [`Body`]), compact JSON of at most [`TERMINATION_LIMIT`] bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SCHEMA_VERSION`]; a message without one is read as version 1.
    #[serde(default = "first_version")]
    pub v: u32,
    #[serde(default)]
    pub task: String,
    pub verdict: RoundOutcome,
    #[serde(flatten)]
    pub body: Body,
    /// Detail was dropped to fit the limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn first_version() -> u32 {
    1
}

/// What a termination message holds besides its verdict, by writer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    /// The round could not run (exit 2).
    Error { error: String },
    /// A launcher's round: its agents.
    Agents(AgentsBrief),
    /// A probe's round.
    Round(RoundBrief),
    /// Nothing but the verdict (what is left when nothing else fits).
    Bare {},
}

/// A probe's round in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundBrief {
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub started: String,
    #[serde(default)]
    pub seconds: f64,
    pub targets: Vec<TargetBrief>,
    /// The failing checks.
    #[serde(default)]
    pub failed: Vec<Check>,
}

/// One target in brief; latencies in milliseconds, `null` when nothing was answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetBrief {
    pub name: TargetId,
    #[serde(default)]
    pub sent: u64,
    #[serde(default)]
    pub unsent: u64,
    /// Successful attempts.
    #[serde(default)]
    pub ok: u64,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub p50: Option<f64>,
    #[serde(default)]
    pub p99: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// A launcher's round in brief: how many agents it expected, how many did not report,
/// and the nodes whose agent failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsBrief {
    pub agents: usize,
    pub missing: usize,
    /// How many nodes' agents failed (the names below may be cut to fit).
    #[serde(default)]
    pub failed: usize,
    #[serde(default)]
    pub failed_nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_nodes: Vec<String>,
    /// Nodes that cannot take an agent, each `node: why`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl Summary {
    /// The brief of a probe's round.
    pub fn of(r: &RoundReport) -> Summary {
        let targets = r
            .targets
            .iter()
            .map(|t| TargetBrief {
                name: t.name.clone(),
                sent: t.sent,
                unsent: t.unsent,
                ok: t.succeeded,
                errors: t.errors.clone(),
                p50: t.latency_ms.map(|l| ms3(l.p50)),
                p99: t.latency_ms.map(|l| ms3(l.p99)),
                max: t.latency_ms.map(|l| ms3(l.max)),
            })
            .collect();
        Summary {
            v: SCHEMA_VERSION,
            task: r.task.clone(),
            verdict: r.verdict.into(),
            body: Body::Round(RoundBrief {
                stopped: r.stopped,
                started: r.started.clone(),
                seconds: r.duration_seconds,
                targets,
                failed: r.checks.iter().filter(|c| !c.pass).cloned().collect(),
            }),
            truncated: false,
        }
    }

    /// The message of a round that could not run.
    pub fn error(task: &str, error: &str) -> Summary {
        Summary {
            v: SCHEMA_VERSION,
            task: task.into(),
            verdict: RoundOutcome::Error,
            body: Body::Error { error: error.into() },
            truncated: false,
        }
    }

    /// The message of a launcher's round.
    pub fn agents(task: &str, outcome: Outcome, agents: AgentsBrief) -> Summary {
        Summary {
            v: SCHEMA_VERSION,
            task: task.into(),
            verdict: outcome.into(),
            body: Body::Agents(agents),
            truncated: false,
        }
    }

    /// The message as written: compact JSON of at most [`TERMINATION_LIMIT`] bytes. Keeps
    /// the verdict and drops detail until it fits: a round's failing checks, then its
    /// targets; the end of an error; failed nodes; at last the task's name.
    pub fn to_message(&self) -> String {
        let mut s = self.clone();
        loop {
            // Serialising these plain structs cannot fail; if it did, the bare verdict still goes out.
            let Ok(text) = serde_json::to_string(&s) else {
                return s.bare_text();
            };
            if text.len() <= TERMINATION_LIMIT {
                return text;
            }
            let over = text.len() - TERMINATION_LIMIT;
            s.truncated = true;
            match &mut s.body {
                Body::Round(r) if !r.failed.is_empty() => drop_last(&mut r.failed, over),
                Body::Round(r) if !r.targets.is_empty() => drop_last(&mut r.targets, over),
                Body::Agents(a) if !a.skipped.is_empty() => drop_last(&mut a.skipped, over),
                Body::Agents(a) if !a.missing_nodes.is_empty() => drop_last(&mut a.missing_nodes, over),
                Body::Agents(a) if !a.failed_nodes.is_empty() => drop_last(&mut a.failed_nodes, over),
                Body::Error { error } if !error.is_empty() => {
                    // room for the ellipsis (3 bytes), escapes aside
                    let keep = error.floor_char_boundary(error.len().saturating_sub(over + 4));
                    error.truncate(keep);
                    error.push('…');
                    if keep == 0 {
                        error.clear();
                    }
                }
                _ if !s.task.is_empty() => {
                    // Only an absurdly long task name can get here.
                    s.task.clear();
                }
                _ => return s.bare_text(),
            }
        }
    }

    fn bare_text(&self) -> String {
        format!(
            r#"{{"v":{},"task":"","verdict":"{}","truncated":true}}"#,
            SCHEMA_VERSION,
            self.verdict.as_str()
        )
    }
}

/// Drops the last items of `items`, at least one, as many as it takes to save `over` bytes
/// of JSON (each item with its comma).
fn drop_last<T: Serialize>(items: &mut Vec<T>, over: usize) {
    let mut saved = 0;
    let mut keep = items.len();
    for item in items.iter().rev() {
        if saved >= over && keep < items.len() {
            break;
        }
        saved += serde_json::to_string(item).map_or(1, |t| t.len()) + 1;
        keep -= 1;
    }
    items.truncate(keep);
}

/// What a pod's termination message said: a [`Summary`] of this schema version, or
/// anything else (an older or newer kpatrol, a crash the kubelet logged, an empty file),
/// kept as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Summary(Summary),
    Text(String),
}

impl Message {
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Message::Summary(s) => Some(s),
            Message::Text(_) => None,
        }
    }
}

/// Reads a termination message; never fails.
pub fn read_message(text: &str) -> Message {
    match serde_json::from_str::<Summary>(text) {
        Ok(s) if s.v == SCHEMA_VERSION => Message::Summary(s),
        _ => Message::Text(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{Measure, Subject};
    use crate::pressure::Stat;
    use std::time::Duration;

    fn check(subject: Subject, measure: Measure, pass: bool) -> Check {
        Check {
            subject,
            measure,
            observed: "95% (19/20)".into(),
            threshold: "≥ 99.9% 200|201".into(),
            pass,
        }
    }

    fn report(targets: usize, name_len: usize) -> RoundReport {
        let latency = LatencySummary {
            min: Duration::from_micros(120),
            mean: Duration::from_micros(1_500),
            p50: Duration::from_micros(1_234),
            p90: Duration::from_micros(2_500),
            p95: Duration::from_micros(3_000),
            p99: Duration::from_micros(9_876),
            max: Duration::from_millis(42),
        };
        let names: Vec<TargetId> = (0..targets)
            .map(|i| TargetId::new(format!("{i:03}-{}", "n".repeat(name_len))))
            .collect();
        let mut checks = Vec::new();
        for n in &names {
            checks.push(check(Subject::Target(n.clone()), Measure::SuccessRate, false));
            checks.push(check(Subject::Target(n.clone()), Measure::Latency(Stat::P99), true));
        }
        checks.push(check(Subject::Round, Measure::AllSent, false));
        RoundReport {
            schema_version: SCHEMA_VERSION,
            task: "web".into(),
            namespace: "kpatrol".into(),
            kind: "HttpCheck".into(),
            mode: "http".into(),
            verdict: Outcome::Fail,
            stopped: false,
            started: "2026-12-03T01:02:03.456Z".into(),
            duration_seconds: 10.012,
            targets: names
                .iter()
                .enumerate()
                .map(|(i, n)| TargetReport {
                    name: n.clone(),
                    planned: Some(100),
                    sent: 100,
                    unsent: 0,
                    answered: 95,
                    failed: 5,
                    succeeded: 95,
                    success_rate: 0.95,
                    rate: 10.0,
                    codes: [("200".to_string(), 95)].into(),
                    errors: [("timeout".to_string(), 5)].into(),
                    error_samples: [("timeout".to_string(), "no answer within 1s".to_string())].into(),
                    latency_ms: (i % 2 == 0).then_some(latency),
                })
                .collect(),
            checks,
        }
    }

    #[test]
    fn the_report_reads_back_as_written() {
        let r = report(3, 8);
        let json = serde_json::to_string(&r).unwrap();
        let back: RoundReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        // the enums are written as they always were
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["checks"][0]["target"], "000-nnnnnnnn");
        assert_eq!(v["checks"][0]["check"], "success rate");
        assert_eq!(v["checks"][1]["check"], "latency p99");
        assert_eq!(v["checks"][6]["target"], "round");
        assert_eq!(v["targets"][0]["latencyMs"]["p99"], 9.876);
    }

    #[test]
    fn a_summary_reads_back_as_written_within_the_limit() {
        let cases = [
            Summary::of(&report(1, 8)),
            Summary::of(&report(4, 20)),
            Summary::error("web", "cannot read /etc/kpatrol/secrets/x/token: no such file"),
            Summary::agents(
                "mesh",
                Outcome::Fail,
                AgentsBrief {
                    agents: 3,
                    missing: 1,
                    failed: 1,
                    failed_nodes: vec!["n2".into()],
                    missing_nodes: vec!["n3".into()],
                    skipped: vec!["n4: cordoned".into()],
                },
            ),
        ];
        for s in cases {
            let text = s.to_message();
            assert!(text.len() <= TERMINATION_LIMIT, "{} bytes", text.len());
            assert_eq!(read_message(&text), Message::Summary(s.clone()), "{text}");
        }
    }

    #[test]
    fn a_summary_of_many_targets_or_long_names_shrinks_to_the_limit() {
        for (targets, name_len, error_len) in [(60, 40, 2000), (300, 100, 2000), (1, 9000, 9000)] {
            let mut r = report(targets, name_len);
            r.task = "t".repeat(if name_len > 1000 { name_len } else { 10 });
            for s in [
                Summary::of(&r),
                Summary::error(&r.task, &"é\u{1}\"".repeat(error_len)),
                Summary::agents(
                    &r.task,
                    Outcome::Fail,
                    AgentsBrief {
                        agents: targets * 3,
                        missing: targets,
                        failed: targets,
                        failed_nodes: (0..targets)
                            .map(|i| format!("node-{i}-{}", "x".repeat(name_len)))
                            .collect(),
                        missing_nodes: (0..targets)
                            .map(|i| format!("m-{i}-{}", "x".repeat(name_len)))
                            .collect(),
                        skipped: (0..targets).map(|i| format!("s-{i}: cordoned")).collect(),
                    },
                ),
            ] {
                let text = s.to_message();
                assert!(text.len() <= TERMINATION_LIMIT, "{} bytes", text.len());
                let Message::Summary(back) = read_message(&text) else {
                    panic!("unreadable: {text}");
                };
                assert_eq!(back.verdict, s.verdict);
                if let (Body::Agents(b), Body::Agents(a)) = (&back.body, &s.body) {
                    // the counts survive the cut, and the verdict stays a fail, not an error
                    assert_eq!((b.agents, b.missing, b.failed), (a.agents, a.missing, a.failed));
                }
                let whole = serde_json::to_string(&s).unwrap();
                assert_eq!(back.truncated, whole.len() > TERMINATION_LIMIT, "{text}");
            }
        }
        // what fits is kept whole: the failing checks go before the targets
        let s = Summary::of(&report(30, 20));
        let Message::Summary(back) = read_message(&s.to_message()) else {
            panic!("unreadable")
        };
        let Body::Round(b) = back.body else {
            panic!("not a round")
        };
        assert!(b.failed.len() < 31 && b.targets.len() == 30, "{b:?}");
    }

    #[test]
    fn any_text_reads_as_a_message() {
        for text in [
            "",
            "   ",
            "null",
            "42",
            "[1,2]",
            "{",
            "\u{0}\u{ffff}",
            "panic: runtime error: index out of range",
            r#"{"v":2,"verdict":"pass","targets":[]}"#,
            r#"{"v":1,"verdict":"maybe"}"#,
            r#"{"v":1,"task":7,"verdict":"pass"}"#,
        ] {
            assert_eq!(read_message(text), Message::Text(text.into()), "{text:?}");
        }
        // a verdict with detail this version cannot read: the verdict alone
        for text in [
            r#"{"v":1,"verdict":"fail","targets":[{"sent":3}]}"#,
            r#"{"v":1,"verdict":"fail","failed":[{"check":"moon phase","observed":"","threshold":"","pass":false}],"targets":[]}"#,
        ] {
            let s = read_message(text);
            assert_eq!(
                s.summary().map(|s| (&s.body, s.verdict)),
                Some((&Body::Bare {}, RoundOutcome::Fail)),
                "{text}"
            );
        }
        // what earlier versions wrote still reads
        let old = r#"{"v":1,"task":"web","verdict":"fail","targets":[{"name":"api","sent":100,"ok":90,"p99":12.5}],"failed":[{"target":"api","check":"success rate","observed":"90% (90/100)","threshold":"≥ 99.9% 200","pass":false}]}"#;
        let Message::Summary(s) = read_message(old) else {
            panic!("unreadable")
        };
        let Body::Round(r) = &s.body else { panic!("not a round") };
        assert_eq!(
            (r.targets[0].ok, r.targets[0].p99, r.targets[0].max),
            (90, Some(12.5), None)
        );
        assert_eq!(r.failed[0].subject, Subject::Target("api".into()));
        for (text, verdict) in [
            (r#"{"verdict":"pass"}"#, RoundOutcome::Pass),
            (
                r#"{"v":1,"task":"t","verdict":"error","error":"boom"}"#,
                RoundOutcome::Error,
            ),
            (
                r#"{"v":1,"task":"t","verdict":"fail","agents":2,"missing":0,"failedNodes":["n2"]}"#,
                RoundOutcome::Fail,
            ),
        ] {
            assert_eq!(read_message(text).summary().map(|s| s.verdict), Some(verdict), "{text}");
        }
    }
}
