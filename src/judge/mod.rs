//! The judge: expectations against what a round observed, as a verdict that lists every
//! check (observed value, threshold, pass/fail) per target and, when there are several
//! targets, for the round as a whole. Pure: no I/O, no clock.

use std::time::Duration;

use serde::Serialize;

use crate::plan::Expect;
use crate::pressure::Stats;
use crate::task::read::format_duration;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// A target's name, or `round` for all targets together.
    pub target: String,
    /// `success rate`, `latency p99`, `all sent`, ...
    pub check: String,
    pub observed: String,
    pub threshold: String,
    pub pass: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub checks: Vec<Check>,
}

impl Verdict {
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

fn pct(x: f64) -> String {
    let s = format!("{:.3}", x * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Every check of one target (or of the merged round); `ok` is the number of successful
/// attempts (for the round: the sum of each target's, judged by its own codes).
pub fn judge_target(target: &str, expect: &Expect, stats: &Stats, ok: u64) -> Vec<Check> {
    let mut checks = Vec::new();
    let check = |name: &str, observed: String, threshold: String, pass: bool| Check {
        target: target.to_string(),
        check: name.to_string(),
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
        let threshold = if target == "round" {
            format!("≥ {}", pct(min))
        } else {
            format!("≥ {} {}", pct(min), codes_text(expect))
        };
        checks.push(check("success rate", observed, threshold, pass));
    }
    let summary = stats.summary();
    for (name, limit) in expect.latency.iter() {
        // every name the limits yield is one the summary has
        let measured = summary.get(name).filter(|_| stats.answered() > 0);
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
            &format!("latency {name}"),
            observed,
            format!("≤ {}", format_duration(limit)),
            pass,
        ));
    }
    if expect.all_sent {
        checks.push(check(
            "all sent",
            format!("{} unsent", stats.unsent),
            "0 unsent".into(),
            stats.unsent == 0,
        ));
    }
    checks
}

fn round_us(d: Duration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

/// Judges every target with its own expectations and, when there are several, the round
/// (all targets merged) with the round's expectations; an attempt counts as a success for
/// the round when it was one for its target.
pub fn judge<'a>(targets: impl IntoIterator<Item = (&'a str, &'a Expect, &'a Stats)>, round: &Expect) -> Verdict {
    let mut checks = Vec::new();
    let mut merged: Option<Stats> = None;
    let mut n = 0;
    let mut ok_total = 0;
    let mut round = round.clone();
    for (name, expect, stats) in targets {
        let ok = successes(expect, stats);
        ok_total += ok;
        checks.extend(judge_target(name, expect, stats, ok));
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
        checks.extend(judge_target("round", &round, m, ok_total));
    }
    let pass = n > 0 && checks.iter().all(|c| c.pass);
    Verdict { pass, checks }
}

/// A round stopped early (Ctrl-C, SIGTERM) did not do what the task asked: it fails, with
/// what it measured still listed.
pub fn add_stopped(verdict: &mut Verdict, ran: Duration, planned: Duration) {
    verdict.checks.push(Check {
        target: "round".into(),
        check: "completed".into(),
        observed: format!("stopped after {}", format_duration(round_ms(ran))),
        threshold: format!("the whole {}", format_duration(planned)),
        pass: false,
    });
    verdict.pass = false;
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
            let v = judge([("t", &c.expect, &c.stats)], &c.expect);
            assert_eq!(v.pass, c.pass, "{}: {:#?}", c.name, v.checks);
            let failing: Vec<&str> = v.failed().map(|c| c.check.as_str()).collect();
            assert_eq!(failing, c.failing, "{}", c.name);
        }
    }

    #[test]
    fn lists_every_check_and_the_round_for_several_targets() {
        let e = expect(Some(1.0), &[(200, 200)], Some(100), None);
        let a = stats(&[(200, 10, 1)], 0, 0);
        let b = stats(&[(200, 9, 1), (404, 1, 1)], 0, 0);
        let v = judge([("a", &e, &a), ("b", &e, &b)], &e);
        // a target's own limits are not checked again for the round
        let mut loose = e.clone();
        loose.latency.p99 = Some(Duration::from_secs(5));
        let v2 = judge([("a", &e, &a), ("b", &loose, &b)], &e);
        assert!(
            !v2.checks
                .iter()
                .any(|c| c.target == "round" && c.check == "latency p99")
        );
        assert!(
            v2.checks
                .iter()
                .any(|c| c.target == "round" && c.check == "success rate")
        );
        let names: Vec<String> = v.checks.iter().map(|c| format!("{}/{}", c.target, c.check)).collect();
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
        assert!(!v.pass);
        let round_rate = &v.checks[6];
        assert_eq!(round_rate.observed, "95% (19/20)");
        assert_eq!(round_rate.threshold, "≥ 100%");
    }
}
