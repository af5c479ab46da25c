//! The judge: expectations against what a round observed, as a verdict that lists every
//! check (observed value, threshold, pass/fail) per target and, when there are several
//! targets, for the round as a whole. Pure: no I/O, no clock.

pub mod matrix;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use crate::plan::{Expect, LatencyLimits, RateUnit};
use crate::pressure::{Stat, Stats};
use crate::results::TargetId;

/// Pass or fail: what a round, a target or a check came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
}

impl Outcome {
    pub fn of(pass: bool) -> Self {
        if pass { Outcome::Pass } else { Outcome::Fail }
    }

    /// `pass` or `fail`, as reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
        }
    }
}

/// What a check is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// All targets of the round together (written `round`).
    Round,
    Target(TargetId),
    /// One agent of a round, by node.
    Agent(String),
    /// One pair of a mesh: from the agent on `source` to `target` over `path` and `family`.
    Cell {
        source: String,
        target: String,
        path: String,
        family: String,
    },
}

/// The name reports give the whole round where a target's name goes.
pub const ROUND: &str = "round";

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Round => f.write_str(ROUND),
            Subject::Target(t) => write!(f, "{t}"),
            Subject::Agent(node) => write!(f, "agent {node}"),
            Subject::Cell {
                source,
                target,
                path,
                family,
            } => write!(f, "{source} → {target} {path} {family}"),
        }
    }
}

/// What a check measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Successful attempts over sent ones.
    SuccessRate,
    /// One latency figure of answered attempts.
    Latency(Stat),
    /// Every planned slot was sent.
    AllSent,
    /// The round ran its whole duration (not stopped early).
    Completed,
    /// An agent's own verdict, as its pod reported it (or that it did not).
    Verdict,
    /// Bytes per second moved by successful attempts (DiskCheck's sequential measures).
    Throughput,
    /// Successful attempts per second (DiskCheck's fdatasync and random measures).
    Iops,
}

impl Measure {
    /// The check's name in reports: `success rate`, `latency p99`, `all sent`, `completed`,
    /// `verdict`, `throughput`, `iops`.
    pub fn name(self) -> String {
        match self {
            Measure::SuccessRate => "success rate".into(),
            Measure::Latency(s) => format!("latency {}", s.as_str()),
            Measure::AllSent => "all sent".into(),
            Measure::Completed => "completed".into(),
            Measure::Verdict => "verdict".into(),
            Measure::Throughput => "throughput".into(),
            Measure::Iops => "iops".into(),
        }
    }

    /// The measure a check's name in reports stands for.
    pub fn from_name(name: &str) -> Option<Measure> {
        match name {
            "success rate" => Some(Measure::SuccessRate),
            "all sent" => Some(Measure::AllSent),
            "completed" => Some(Measure::Completed),
            "verdict" => Some(Measure::Verdict),
            "throughput" => Some(Measure::Throughput),
            "iops" => Some(Measure::Iops),
            _ => Stat::from_name(name.strip_prefix("latency ")?).map(Measure::Latency),
        }
    }
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Measure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Measure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Measure::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown check `{name}`")))
    }
}

/// One check: what it is about, what it measures, the value observed, the threshold (both
/// as people read them, e.g. `99.5% (995/1000)` and `≥ 99.9% 200`) and whether it passed.
///
/// In JSON the subject is `target` (a target's name, or `round`), `agent` (a node), or
/// `source`, `target`, `path` and `family` (a mesh cell); the measure is `check`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "CheckWire", try_from = "CheckWire")]
pub struct Check {
    pub subject: Subject,
    pub measure: Measure,
    pub observed: String,
    pub threshold: String,
    pub pass: bool,
}

impl Check {
    /// The target this check is about, if it is about one target.
    pub fn target(&self) -> Option<&TargetId> {
        match &self.subject {
            Subject::Target(t) => Some(t),
            _ => None,
        }
    }
}

/// [`Check`] as JSON has it.
#[derive(Serialize, Deserialize)]
struct CheckWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    check: Measure,
    observed: String,
    threshold: String,
    pass: bool,
}

impl From<Check> for CheckWire {
    fn from(c: Check) -> Self {
        let (mut source, mut agent, mut target, mut path, mut family) = (None, None, None, None, None);
        match c.subject {
            Subject::Round => target = Some(ROUND.to_string()),
            Subject::Target(t) => target = Some(t.to_string()),
            Subject::Agent(a) => agent = Some(a),
            Subject::Cell {
                source: s,
                target: t,
                path: p,
                family: f,
            } => {
                (source, target, path, family) = (Some(s), Some(t), Some(p), Some(f));
            }
        }
        CheckWire {
            source,
            agent,
            target,
            path,
            family,
            check: c.measure,
            observed: c.observed,
            threshold: c.threshold,
            pass: c.pass,
        }
    }
}

/// A check in JSON whose subject is none of [`Subject`]'s.
#[derive(Debug, thiserror::Error)]
#[error("a check names a target (or `round`), an agent, or a mesh cell (source, target, path, family)")]
pub struct UnknownSubject;

impl TryFrom<CheckWire> for Check {
    type Error = UnknownSubject;

    fn try_from(w: CheckWire) -> Result<Self, UnknownSubject> {
        let subject = match (w.source, w.agent, w.target, w.path, w.family) {
            (Some(source), None, Some(target), Some(path), Some(family)) => Subject::Cell {
                source,
                target,
                path,
                family,
            },
            (None, Some(agent), None, None, None) => Subject::Agent(agent),
            (None, None, Some(t), None, None) if t == ROUND => Subject::Round,
            (None, None, Some(t), None, None) => Subject::Target(t.into()),
            _ => return Err(UnknownSubject),
        };
        Ok(Check {
            subject,
            measure: w.check,
            observed: w.observed,
            threshold: w.threshold,
            pass: w.pass,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.pass)
    }
}

/// Attempts answered with an allowed code (any code when none is listed).
pub fn successes(expect: &Expect, stats: &Stats) -> u64 {
    if expect.codes.is_empty() {
        return stats.answered();
    }
    stats
        .codes
        .iter()
        .filter(|(c, _)| expect.codes.iter().any(|r| r.contains(**c)))
        .map(|(_, n)| n)
        .sum()
}

fn codes_text(expect: &Expect) -> String {
    if expect.codes.is_empty() {
        "any answer".into()
    } else {
        expect
            .codes
            .iter()
            .map(|c| expect.code_kind.range(c))
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// A ratio as a percentage, up to three decimals, trailing zeros dropped (`0.5` → `50%`).
pub(crate) fn pct(x: f64) -> String {
    let s = format!("{:.3}", x * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Every check of one target (or of the merged round); `ok` is the number of successful
/// attempts (for the round: the sum of each target's, judged by its own codes).
pub fn judge_target(subject: &Subject, expect: &Expect, stats: &Stats, ok: u64) -> Vec<Check> {
    let mut checks = Vec::new();
    let check = |measure: Measure, observed: String, threshold: String, pass: bool| Check {
        subject: subject.clone(),
        measure,
        observed,
        threshold,
        pass,
    };
    if let Some(min) = expect.success_rate {
        let (observed, pass) = if stats.sent == 0 {
            ("nothing sent".to_string(), false)
        } else {
            let rate = ok as f64 / stats.sent as f64;
            (format!("{} ({ok}/{})", pct(rate), stats.sent), rate >= min)
        };
        let threshold = if *subject == Subject::Round {
            format!("≥ {}", pct(min))
        } else {
            format!("≥ {} {}", pct(min), codes_text(expect))
        };
        checks.push(check(Measure::SuccessRate, observed, threshold, pass));
    }
    let summary = stats.summary();
    for (stat, limit) in latency_limits(&expect.latency) {
        let measured = (stats.answered() > 0).then(|| summary.get(stat));
        let (observed, pass) = if let Some(mut v) = measured {
            if expect.whole_ms {
                // kdoctor compares whole milliseconds (the mean truncated)
                v = round_ms(v);
            }
            (format_duration(round_us(v)), v <= limit)
        } else {
            ("no answers".to_string(), false)
        };
        checks.push(check(
            Measure::Latency(stat),
            observed,
            format!("≤ {}", format_duration(limit)),
            pass,
        ));
    }
    if let Some(floor) = &expect.min_rate {
        let secs = stats.elapsed.as_secs_f64();
        let per_second = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
        let (measure, observed, threshold, pass) = match floor.unit {
            RateUnit::Bytes(each) => {
                let bytes = per_second * each as f64;
                (
                    Measure::Throughput,
                    format!("{} ({ok} × {})", throughput_text(bytes), bytes_text(each as f64)),
                    format!("≥ {}", throughput_text(floor.per_second)),
                    bytes >= floor.per_second,
                )
            }
            RateUnit::Ops => (
                Measure::Iops,
                format!(
                    "{} ({ok} in {})",
                    iops_text(per_second),
                    format_duration(round_ms(stats.elapsed))
                ),
                format!("≥ {}", iops_text(floor.per_second)),
                per_second >= floor.per_second,
            ),
        };
        checks.push(check(measure, observed, threshold, pass && secs > 0.0));
    }
    if expect.all_sent {
        checks.push(check(
            Measure::AllSent,
            format!("{} unsent", stats.unsent),
            "0 unsent".into(),
            stats.unsent == 0,
        ));
    }
    checks
}

/// Bytes as people read them: `512 B`, `4 KiB`, `1.5 MiB`, `2 GiB`.
pub fn bytes_text(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = "B";
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s} {unit}")
}

/// A throughput: `112.3 MiB/s`.
pub fn throughput_text(bytes_per_second: f64) -> String {
    format!("{}/s", bytes_text(bytes_per_second))
}

/// Operations per second: `2,345 IOPS` (whole numbers; one decimal under 100).
pub fn iops_text(per_second: f64) -> String {
    if per_second < 100.0 {
        let s = format!("{per_second:.1}");
        return format!("{} IOPS", s.strip_suffix(".0").unwrap_or(&s));
    }
    let digits = format!("{}", per_second.round() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} IOPS")
}

/// Each set latency limit with the figure it bounds, in a fixed order.
fn latency_limits(l: &LatencyLimits) -> impl Iterator<Item = (Stat, Duration)> {
    [
        (Stat::Mean, l.mean),
        (Stat::P50, l.p50),
        (Stat::P90, l.p90),
        (Stat::P95, l.p95),
        (Stat::P99, l.p99),
        (Stat::Max, l.max),
    ]
    .into_iter()
    .filter_map(|(s, d)| d.map(|d| (s, d)))
}

fn round_us(d: Duration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

/// Judges every target with its own expectations and, when there are several, the round
/// (all targets merged) with the round's expectations; an attempt counts as a success for
/// the round when it was one for its target.
pub fn judge<'a>(targets: impl IntoIterator<Item = (&'a TargetId, &'a Expect, &'a Stats)>, round: &Expect) -> Verdict {
    let mut checks = Vec::new();
    let mut merged: Option<Stats> = None;
    let mut n = 0;
    let mut ok_total = 0;
    let mut round = round.clone();
    for (name, expect, stats) in targets {
        let ok = successes(expect, stats);
        ok_total += ok;
        checks.extend(judge_target(&Subject::Target(name.clone()), expect, stats, ok));
        match &mut merged {
            None => merged = Some(stats.clone()),
            Some(m) => m.merge(stats),
        }
        n += 1;
        // A limit a target sets for itself is not the round's to check.
        if expect.success_rate != round.success_rate {
            round.success_rate = None;
        }
        let (l, r) = (&expect.latency, &mut round.latency);
        for (mine, theirs) in [
            (&mut r.mean, l.mean),
            (&mut r.p50, l.p50),
            (&mut r.p90, l.p90),
            (&mut r.p95, l.p95),
            (&mut r.p99, l.p99),
            (&mut r.max, l.max),
        ] {
            if *mine != theirs {
                *mine = None;
            }
        }
    }
    if n > 1
        && let Some(m) = &merged
    {
        checks.extend(judge_target(&Subject::Round, &round, m, ok_total));
    }
    let outcome = Outcome::of(n > 0 && checks.iter().all(|c| c.pass));
    Verdict { outcome, checks }
}

/// A round stopped early (Ctrl-C, SIGTERM) did not do what the task asked: it fails, with
/// what it measured still listed.
pub fn add_stopped(verdict: &mut Verdict, ran: Duration, planned: Duration) {
    verdict.checks.push(Check {
        subject: Subject::Round,
        measure: Measure::Completed,
        observed: format!("stopped after {}", format_duration(round_ms(ran))),
        threshold: format!("the whole {}", format_duration(planned)),
        pass: false,
    });
    verdict.outcome = Outcome::Fail;
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{CodeKind, CodeRange, LatencyLimits};
    use crate::pressure::{ErrorKind, Outcome};

    fn stats(answers: &[(u16, u64, u64)], errors: u64, unsent: u64) -> Stats {
        let mut s = Stats::new(Duration::from_secs(10));
        for (code, n, ms) in answers {
            for _ in 0..*n {
                s.record(Outcome::Answered(*code), Duration::from_millis(*ms));
            }
        }
        for _ in 0..errors {
            s.record(Outcome::Failed(ErrorKind::Timeout), Duration::from_secs(1));
        }
        s.unsent = unsent;
        s
    }

    fn expect(rate: Option<f64>, codes: &[(u16, u16)], p99: Option<u64>, mean: Option<u64>) -> Expect {
        Expect {
            success_rate: rate,
            latency: LatencyLimits {
                p99: p99.map(Duration::from_millis),
                mean: mean.map(Duration::from_millis),
                ..Default::default()
            },
            codes: codes.iter().map(|(a, b)| CodeRange { from: *a, to: *b }).collect(),
            all_sent: true,
            code_kind: CodeKind::Http,
            whole_ms: false,
            min_rate: None,
        }
    }

    #[test]
    fn table_of_cases() {
        struct Case {
            name: &'static str,
            expect: Expect,
            stats: Stats,
            pass: bool,
            failing: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "all good",
                expect: expect(Some(1.0), &[(200, 299)], Some(10), None),
                stats: stats(&[(200, 100, 2)], 0, 0),
                pass: true,
                failing: &[],
            },
            Case {
                name: "500s fail the rate when codes are listed",
                expect: expect(Some(0.99), &[(200, 399)], None, None),
                stats: stats(&[(200, 90, 1), (500, 10, 1)], 0, 0),
                pass: false,
                failing: &["success rate"],
            },
            Case {
                name: "kdoctor: any status is success without statusCode",
                expect: expect(Some(1.0), &[], None, None),
                stats: stats(&[(200, 50, 1), (503, 50, 1)], 0, 0),
                pass: true,
                failing: &[],
            },
            Case {
                name: "errors count against the rate",
                expect: expect(Some(0.95), &[], None, None),
                stats: stats(&[(200, 90, 1)], 10, 0),
                pass: false,
                failing: &["success rate"],
            },
            Case {
                name: "rate at the threshold passes",
                expect: expect(Some(0.9), &[], None, None),
                stats: stats(&[(200, 90, 1)], 10, 0),
                pass: true,
                failing: &[],
            },
            Case {
                name: "slow p99 and mean",
                expect: expect(None, &[], Some(50), Some(20)),
                stats: stats(&[(200, 95, 10), (200, 5, 300)], 0, 0),
                pass: false,
                failing: &["latency mean", "latency p99"],
            },
            Case {
                name: "unsent slots fail",
                expect: expect(None, &[], None, None),
                stats: stats(&[(200, 10, 1)], 0, 3),
                pass: false,
                failing: &["all sent"],
            },
            Case {
                name: "nothing answered fails latency",
                expect: expect(None, &[], Some(5), None),
                stats: stats(&[], 4, 0),
                pass: false,
                failing: &["latency p99"],
            },
        ];
        for c in cases {
            let t = TargetId::from("t");
            let v = judge([(&t, &c.expect, &c.stats)], &c.expect);
            assert_eq!(v.passed(), c.pass, "{}: {:#?}", c.name, v.checks);
            let failing: Vec<String> = v.failed().map(|c| c.measure.name()).collect();
            assert_eq!(failing, c.failing, "{}", c.name);
        }
    }

    #[test]
    fn lists_every_check_and_the_round_for_several_targets() {
        let e = expect(Some(1.0), &[(200, 200)], Some(100), None);
        let a = stats(&[(200, 10, 1)], 0, 0);
        let b = stats(&[(200, 9, 1), (404, 1, 1)], 0, 0);
        let (ta, tb) = (TargetId::from("a"), TargetId::from("b"));
        let v = judge([(&ta, &e, &a), (&tb, &e, &b)], &e);
        // a target's own limits are not checked again for the round
        let mut loose = e.clone();
        loose.latency.p99 = Some(Duration::from_secs(5));
        let v2 = judge([(&ta, &e, &a), (&tb, &loose, &b)], &e);
        assert!(
            !v2.checks
                .iter()
                .any(|c| c.subject == Subject::Round && c.measure == Measure::Latency(Stat::P99))
        );
        assert!(
            v2.checks
                .iter()
                .any(|c| c.subject == Subject::Round && c.measure == Measure::SuccessRate)
        );
        let names: Vec<String> = v
            .checks
            .iter()
            .map(|c| format!("{}/{}", c.subject, c.measure))
            .collect();
        assert_eq!(
            names,
            [
                "a/success rate",
                "a/latency p99",
                "a/all sent",
                "b/success rate",
                "b/latency p99",
                "b/all sent",
                "round/success rate",
                "round/latency p99",
                "round/all sent"
            ]
        );
        assert!(!v.passed());
        let round_rate = &v.checks[6];
        assert_eq!(round_rate.observed, "95% (19/20)");
        assert_eq!(round_rate.threshold, "≥ 100%");
    }

    #[test]
    fn checks_read_back_as_written_for_every_subject() {
        let subjects = [
            (Subject::Round, r#""target":"round""#),
            (Subject::Target("api".into()), r#""target":"api""#),
            (Subject::Agent("node-1".into()), r#""agent":"node-1""#),
            (
                Subject::Cell {
                    source: "node-1".into(),
                    target: "node-2".into(),
                    path: "pod".into(),
                    family: "ipv6".into(),
                },
                r#""source":"node-1","target":"node-2","path":"pod","family":"ipv6""#,
            ),
        ];
        let measures = [
            Measure::SuccessRate,
            Measure::AllSent,
            Measure::Completed,
            Measure::Verdict,
            Measure::Latency(Stat::Mean),
            Measure::Latency(Stat::P99),
        ];
        for (subject, json) in subjects {
            for measure in measures {
                let c = Check {
                    subject: subject.clone(),
                    measure,
                    observed: "1".into(),
                    threshold: "2".into(),
                    pass: false,
                };
                let text = serde_json::to_string(&c).unwrap();
                assert!(text.starts_with(&format!("{{{json},\"check\":\"{measure}\"")), "{text}");
                assert_eq!(serde_json::from_str::<Check>(&text).unwrap(), c);
            }
        }
        assert_eq!(Measure::Latency(Stat::P95).name(), "latency p95");
        for bad in [
            r#"{"check":"success rate","observed":"","threshold":"","pass":true}"#,
            r#"{"target":"a","agent":"n","check":"success rate","observed":"","threshold":"","pass":true}"#,
            r#"{"target":"a","check":"latency p42","observed":"","threshold":"","pass":true}"#,
        ] {
            assert!(serde_json::from_str::<Check>(bad).is_err(), "{bad}");
        }
    }
}
