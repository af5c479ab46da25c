//! Reports of a judged round: the stable JSON shape (`-o json`, documented in
//! `docs/report.md`), the human table, and the bounded termination message a probe
//! leaves in its pod.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::judge::{Check, Verdict, successes};
use crate::plan::Plan;
use crate::pressure::LatencySummary;
use crate::probe::RoundResult;

/// Bump when a field changes meaning or disappears; adding fields keeps the version.
pub const SCHEMA_VERSION: u32 = 1;
/// Kubernetes keeps at most 4096 bytes of a termination message.
pub const TERMINATION_LIMIT: usize = 4096;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    pub schema_version: u32,
    pub task: String,
    pub namespace: String,
    pub kind: String,
    pub mode: String,
    /// `pass` or `fail`.
    pub verdict: &'static str,
    /// The round was cut short by Ctrl-C or SIGTERM.
    pub stopped: bool,
    /// RFC 3339, UTC.
    pub started: String,
    pub duration_seconds: f64,
    pub targets: Vec<TargetReport>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub name: String,
    /// Slots planned at a fixed rate; absent at the maximum rate.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
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
    let expects: Vec<_> = plan.targets().into_iter().map(|(_, e)| e.clone()).collect();
    let targets = round
        .targets
        .iter()
        .zip(expects)
        .map(|(t, e)| {
            let s = &t.stats;
            let ok = successes(&e, s);
            TargetReport {
                name: t.name.clone(),
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
        verdict: if verdict.pass { "pass" } else { "fail" },
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
    crate::task::read::format_duration(std::time::Duration::from_micros(d.as_micros() as u64))
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
            c.target.clone(),
            c.check.clone(),
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
        r.verdict.to_uppercase(),
        r.checks.len(),
        failed
    );
    out
}

/// The termination message: compact JSON of at most [`TERMINATION_LIMIT`] bytes. Keeps the
/// verdict, per-target counts and the failing checks; drops detail (passing checks, then
/// targets) until it fits.
pub fn termination_message(r: &RoundReport) -> String {
    #[derive(Serialize)]
    struct Brief<'a> {
        v: u32,
        task: &'a str,
        verdict: &'a str,
        stopped: bool,
        started: &'a str,
        seconds: f64,
        targets: Vec<serde_json::Value>,
        failed: Vec<&'a Check>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    }
    let targets: Vec<serde_json::Value> = r
        .targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name, "sent": t.sent, "unsent": t.unsent, "ok": t.succeeded,
                "errors": t.errors,
                "p50": t.latency_ms.map(|l| ms3(l.p50)), "p99": t.latency_ms.map(|l| ms3(l.p99)), "max": t.latency_ms.map(|l| ms3(l.max)),
            })
        })
        .collect();
    let mut b = Brief {
        v: SCHEMA_VERSION,
        task: &r.task,
        verdict: r.verdict,
        stopped: r.stopped,
        started: &r.started,
        seconds: r.duration_seconds,
        targets,
        failed: r.checks.iter().filter(|c| !c.pass).collect(),
        truncated: false,
    };
    // Serialising these plain structs cannot fail; if it did, the bare verdict still goes out.
    let bare = || serde_json::json!({"v": SCHEMA_VERSION, "verdict": r.verdict, "truncated": true}).to_string();
    loop {
        let Ok(s) = serde_json::to_string(&b) else {
            return bare();
        };
        if s.len() <= TERMINATION_LIMIT {
            return s;
        }
        b.truncated = true;
        if !b.failed.is_empty() {
            b.failed.pop();
        } else if !b.targets.is_empty() {
            b.targets.pop();
        } else {
            // Only an absurdly long task name can get here.
            return bare();
        }
    }
}
