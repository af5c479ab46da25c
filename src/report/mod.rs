//! Reports of a judged round: one typed, versioned struct, [`RoundReport`], that every
//! writer and reader shares (`docs/report.md`):
//!
//! - written in full by `kpatrol run -o json` and by a probe on its stdout;
//! - written as a termination message, cut to at most [`TERMINATION_LIMIT`] bytes
//!   ([`RoundReport::to_message`]), by a probe (its round, or why it could not run) and by
//!   the launcher (its agents, [`AgentsReport`]);
//! - read back by the launcher and by `kpatrol status` / `kpatrol report` through
//!   [`read_message`], which takes any text a pod may have left.
//!
//! Checks are the judge's typed [`Check`]. Also the human table of a round, and a mesh
//! round's report ([`mesh`]) with its heatmap as text ([`heatmap`]) and as a page ([`html`]).

pub mod heatmap;
pub mod html;
pub mod mesh;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::judge::{Check, Outcome, Verdict, successes};
use crate::plan::Plan;
use crate::pressure::LatencySummary;
use crate::results::{RoundResult, TargetId};

/// Bump when a field changes meaning or disappears; adding fields keeps the version.
/// Version 1 had a separate compact termination message (`{"v":1,…}`); version 2 is one
/// struct for both.
pub const SCHEMA_VERSION: u32 = 2;
/// Kubernetes keeps at most 4096 bytes of a termination message.
pub const TERMINATION_LIMIT: usize = 4096;

/// A judged round: what `kpatrol run -o json` and a probe print, what a pod leaves as its
/// termination message ([`RoundReport::to_message`], cut to fit), what the launcher writes
/// of its agents, and what the launcher, `status` and `report` read back
/// ([`read_message`]). One type for every writer and reader (`docs/report.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    pub schema_version: u32,
    #[serde(default)]
    pub task: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The task's kind as written (`HttpCheck`, `AppHttpHealthy`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The probe's mode (`http`, `dns`); `round` for a launcher.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    pub verdict: RoundOutcome,
    /// Why the round could not run (verdict `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The round was cut short by Ctrl-C or SIGTERM.
    #[serde(default)]
    pub stopped: bool,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started: String,
    #[serde(default)]
    pub duration_seconds: f64,
    /// A launcher's round: its agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Detail was dropped to fit a termination message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
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
    #[serde(default)]
    pub codes: BTreeMap<String, u64>,
    /// Error kind → count (timeout, refused, reset, dns, tls, protocol, truncated, other).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Error kind → one example message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_samples: BTreeMap<String, String>,
    /// Latency of answered attempts, in milliseconds, measured from the intended send time;
    /// null when nothing was answered.
    pub latency_ms: Option<LatencySummary>,
}

/// The seconds a target was pressed: the round's sending `window`, or less for a target
/// pressed for a share of it (DiskCheck's measures, one after another).
fn target_window(elapsed: std::time::Duration, window: f64) -> f64 {
    if elapsed.is_zero() {
        window
    } else {
        elapsed.as_secs_f64().clamp(1e-3, window)
    }
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
                rate: (s.sent as f64 / target_window(s.elapsed, window) * 10.0).round() / 10.0,
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
        verdict: verdict.outcome.into(),
        error: None,
        stopped: round.stopped,
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_seconds: (secs * 1000.0).round() / 1000.0,
        agents: None,
        targets,
        checks: verdict.checks.clone(),
        truncated: false,
    }
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

/// A round's verdict as reports write it: `pass`, `fail`, or `error` (the round could not
/// run; exit code 2).
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

/// A launcher's round: its agents, counted by node. Which nodes failed or did not report
/// are its checks (subject `agent`), so a message cut to fit still keeps the counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsReport {
    /// Nodes that could take an agent.
    pub expected: usize,
    /// Expected nodes whose agent finished (pass, fail or could not run).
    pub reported: usize,
    /// Expected nodes whose agent did not report.
    pub missing: usize,
    /// Nodes whose agent failed or could not run.
    pub failed: usize,
    /// Nodes the task's selector matches that cannot take an agent.
    #[serde(default)]
    pub skipped: usize,
    /// Those nodes and why (the list may be cut to fit; `skipped` stays the count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_nodes: Vec<SkippedNode>,
}

/// A node that cannot take an agent, and why (a taint, cordoned, a missing label).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedNode {
    pub node: String,
    pub why: String,
}

impl RoundReport {
    /// The report of a round that could not run (exit 2): its task and why.
    pub fn could_not_run(task: &str, error: &str) -> RoundReport {
        RoundReport {
            error: Some(error.into()),
            ..RoundReport::bare(task, RoundOutcome::Error)
        }
    }

    /// A report with nothing but its task and verdict.
    pub fn bare(task: &str, verdict: RoundOutcome) -> RoundReport {
        RoundReport {
            schema_version: SCHEMA_VERSION,
            task: task.into(),
            namespace: String::new(),
            kind: String::new(),
            mode: String::new(),
            verdict,
            error: None,
            stopped: false,
            started: String::new(),
            duration_seconds: 0.0,
            agents: None,
            targets: Vec::new(),
            checks: Vec::new(),
            truncated: false,
        }
    }

    /// The report as a termination message: compact JSON of at most [`TERMINATION_LIMIT`]
    /// bytes. Keeps the verdict and the counts, and drops detail until it fits: error
    /// samples, passing checks, answer codes, skipped nodes, targets from the last, failing
    /// checks from the last, the end of an error, at last the task's name. What was dropped
    /// sets `truncated`.
    pub fn to_message(&self) -> String {
        let mut r = self.clone();
        loop {
            // Serialising these plain structs cannot fail; if it did, the bare verdict still goes out.
            let Ok(text) = serde_json::to_string(&r) else {
                return r.bare_text();
            };
            if text.len() <= TERMINATION_LIMIT {
                return text;
            }
            let over = text.len() - TERMINATION_LIMIT;
            r.truncated = true;
            let skipped = r.agents.as_mut().map(|a| &mut a.skipped_nodes);
            if r.targets.iter().any(|t| !t.error_samples.is_empty()) {
                r.targets.iter_mut().for_each(|t| t.error_samples.clear());
            } else if r.checks.iter().any(|c| c.pass) {
                r.checks.retain(|c| !c.pass);
            } else if r.targets.iter().any(|t| !t.codes.is_empty()) {
                r.targets.iter_mut().for_each(|t| t.codes.clear());
            } else if let Some(s) = skipped.filter(|s| !s.is_empty()) {
                drop_last(s, over);
            } else if !r.targets.is_empty() {
                drop_last(&mut r.targets, over);
            } else if !r.checks.is_empty() {
                drop_last(&mut r.checks, over);
            } else if let Some(error) = r.error.as_mut().filter(|e| !e.is_empty()) {
                // room for the ellipsis (3 bytes), escapes aside
                let keep = error.floor_char_boundary(error.len().saturating_sub(over + 4));
                error.truncate(keep);
                error.push('…');
                if keep == 0 {
                    error.clear();
                }
            } else if !(r.task.is_empty() && r.namespace.is_empty() && r.kind.is_empty()) {
                // Only absurdly long names can get here.
                r.task.clear();
                r.namespace.clear();
                r.kind.clear();
            } else {
                return r.bare_text();
            }
        }
    }

    fn bare_text(&self) -> String {
        format!(
            r#"{{"schemaVersion":{},"task":"","verdict":"{}","truncated":true}}"#,
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

/// What a pod's termination message said: a [`RoundReport`] (of this schema version, or
/// the verdict and task of an earlier one), or anything else (a newer kpatrol, a crash the
/// kubelet logged, an empty file), kept as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Report(Box<RoundReport>),
    Text(String),
}

impl Message {
    pub fn report(&self) -> Option<&RoundReport> {
        match self {
            Message::Report(r) => Some(r),
            Message::Text(_) => None,
        }
    }
}

/// The least a message of this or an earlier version holds (version 1 wrote `v`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verdictish {
    #[serde(default, alias = "v")]
    schema_version: Option<u32>,
    #[serde(default)]
    task: String,
    verdict: RoundOutcome,
}

/// Reads a termination message; never fails. A message of this version whose detail does
/// not read, or one of an earlier version, keeps its verdict and task (`truncated`).
pub fn read_message(text: &str) -> Message {
    match serde_json::from_str::<RoundReport>(text) {
        Ok(r) if r.schema_version == SCHEMA_VERSION => return Message::Report(Box::new(r)),
        Ok(_) => return Message::Text(text.to_string()),
        Err(_) => {}
    }
    match serde_json::from_str::<Verdictish>(text) {
        // version 1 wrote messages without a version
        Ok(v) if v.schema_version.unwrap_or(1) <= SCHEMA_VERSION => Message::Report(Box::new(RoundReport {
            truncated: true,
            ..RoundReport::bare(&v.task, v.verdict)
        })),
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
            verdict: RoundOutcome::Fail,
            error: None,
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
            agents: None,
            truncated: false,
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

    fn launcher(nodes: usize, name_len: usize) -> RoundReport {
        let mut checks = Vec::new();
        for i in 0..nodes {
            let node = format!("node-{i}-{}", "x".repeat(name_len));
            let (observed, pass) = match i % 3 {
                0 => ("pass", true),
                1 => ("fail (exit 1)", false),
                _ => ("no report", false),
            };
            checks.push(Check {
                subject: Subject::Agent(node),
                measure: Measure::Verdict,
                observed: observed.into(),
                threshold: "pass".into(),
                pass,
            });
        }
        RoundReport {
            mode: "round".into(),
            agents: Some(AgentsReport {
                expected: nodes,
                reported: nodes - nodes / 3,
                missing: nodes / 3,
                failed: nodes / 3,
                skipped: nodes,
                skipped_nodes: (0..nodes)
                    .map(|i| SkippedNode {
                        node: format!("s-{i}"),
                        why: "cordoned".into(),
                    })
                    .collect(),
            }),
            checks,
            ..RoundReport::bare("mesh", RoundOutcome::Fail)
        }
    }

    #[test]
    fn a_message_reads_back_as_written_within_the_limit() {
        let cases = [
            report(1, 8),
            report(4, 20),
            RoundReport::could_not_run("web", "cannot read /etc/kpatrol/secrets/x/token: no such file"),
            launcher(3, 2),
        ];
        for r in cases {
            let text = r.to_message();
            assert!(text.len() <= TERMINATION_LIMIT, "{} bytes", text.len());
            assert_eq!(read_message(&text), Message::Report(Box::new(r.clone())), "{text}");
        }
    }

    #[test]
    fn a_message_of_many_targets_or_long_names_shrinks_to_the_limit() {
        for (targets, name_len, error_len) in [(60, 40, 2000), (300, 100, 2000), (1, 9000, 9000)] {
            let mut r = report(targets, name_len);
            r.task = "t".repeat(if name_len > 1000 { name_len } else { 10 });
            let mut l = launcher(targets * 3, name_len);
            l.task = r.task.clone();
            for full in [
                r.clone(),
                RoundReport::could_not_run(&r.task, &"é\u{1}\"".repeat(error_len)),
                l,
            ] {
                let text = full.to_message();
                assert!(text.len() <= TERMINATION_LIMIT, "{} bytes", text.len());
                let Message::Report(back) = read_message(&text) else {
                    panic!("unreadable: {text}");
                };
                // the verdict and the counts survive the cut: a fail stays a fail, not an error
                assert_eq!(back.verdict, full.verdict);
                if let (Some(b), Some(a)) = (&back.agents, &full.agents) {
                    assert_eq!(
                        (b.expected, b.reported, b.missing, b.failed, b.skipped),
                        (a.expected, a.reported, a.missing, a.failed, a.skipped)
                    );
                }
                let whole = serde_json::to_string(&full).unwrap();
                assert_eq!(back.truncated, whole.len() > TERMINATION_LIMIT, "{text}");
            }
        }
        // what goes first: error samples, then passing checks, then codes; targets before
        // the failing checks
        let full = report(12, 8);
        let Message::Report(back) = read_message(&full.to_message()) else {
            panic!("unreadable")
        };
        assert!(back.truncated);
        assert!(back.targets.iter().all(|t| t.error_samples.is_empty()), "{back:?}");
        assert!(back.checks.iter().all(|c| !c.pass), "{back:?}");
        assert_eq!(back.checks.len(), 13, "every failing check stays: {back:?}");
        assert!(!back.targets.is_empty() && back.targets.len() <= 12);
        // a launcher's passing agents and skipped nodes go before its failing agents
        let full = launcher(120, 4);
        let Message::Report(back) = read_message(&full.to_message()) else {
            panic!("unreadable")
        };
        assert!(back.truncated && back.checks.len() > 20, "{back:?}");
        assert!(
            back.checks
                .iter()
                .all(|c| matches!(c.subject, Subject::Agent(_)) && !c.pass)
        );
        assert!(
            back.agents
                .is_some_and(|a| a.skipped_nodes.is_empty() && a.skipped == 120)
        );
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
            r#"{"schemaVersion":3,"verdict":"pass","targets":[]}"#,
            r#"{"v":3,"verdict":"pass"}"#,
            r#"{"schemaVersion":2,"verdict":"maybe"}"#,
            r#"{"schemaVersion":2,"task":7,"verdict":"pass"}"#,
        ] {
            assert_eq!(read_message(text), Message::Text(text.into()), "{text:?}");
        }
        // a verdict with detail this version cannot read: the verdict alone, marked cut
        for text in [
            r#"{"schemaVersion":2,"verdict":"fail","targets":[{"sent":3}]}"#,
            r#"{"schemaVersion":2,"verdict":"fail","checks":[{"check":"moon phase","observed":"","threshold":"","pass":false}]}"#,
        ] {
            let r = read_message(text);
            assert_eq!(
                r.report()
                    .map(|r| (r.verdict, r.targets.len(), r.checks.len(), r.truncated)),
                Some((RoundOutcome::Fail, 0, 0, true)),
                "{text}"
            );
        }
        // what version 1 wrote keeps its task and verdict
        for (text, verdict) in [
            (r#"{"verdict":"pass"}"#, RoundOutcome::Pass),
            (
                r#"{"v":1,"task":"web","verdict":"fail","targets":[{"name":"api","sent":100,"ok":90,"p99":12.5}],"failed":[]}"#,
                RoundOutcome::Fail,
            ),
            (
                r#"{"v":1,"task":"web","verdict":"error","error":"boom"}"#,
                RoundOutcome::Error,
            ),
        ] {
            let r = read_message(text);
            assert_eq!(
                r.report().map(|r| (r.verdict, r.task.as_str())),
                Some((verdict, if text.contains("web") { "web" } else { "" })),
                "{text}"
            );
        }
    }
}
