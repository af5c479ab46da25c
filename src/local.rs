//! One round of a task, start to finish: prepare the targets, press them (with a live
//! progress line when asked), judge, and build the report. `kpatrol run` and
//! `kpatrol-probe` both come through here, so a laptop run and a pod run agree.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::duration::format_duration;
use crate::judge::{self, Verdict};
use crate::plan::{Plan, Rate};
use crate::pressure::Stop;
use crate::probe::{self, Mounts, ProbeError};
use crate::report::{self, RoundReport};
use crate::results::RoundResult;

/// A finished round: what was measured, the verdict, the report.
pub struct Finished {
    pub round: RoundResult,
    pub verdict: Verdict,
    pub report: RoundReport,
}

/// Runs one round of `plan` and judges it. `stop` ends the round early; what was
/// measured until then is still judged and reported.
pub async fn execute(
    plan: &Plan,
    mounts: &Mounts,
    stop: Stop,
    progress: bool,
) -> Result<(RoundReport, Verdict), ProbeError> {
    execute_round(plan, mounts, stop, progress)
        .await
        .map(|f| (f.report, f.verdict))
}

/// Like [`execute`], keeping the measurements (for telemetry).
pub async fn execute_round(plan: &Plan, mounts: &Mounts, stop: Stop, progress: bool) -> Result<Finished, ProbeError> {
    let prepared = probe::prepare(plan, mounts).await?;
    let bar = progress.then(|| start_progress(plan));
    let ticker = bar.clone().map(|bar| {
        let live: Vec<_> = prepared.live.iter().map(|l| l.live.clone()).collect();
        let duration = plan.pressure.duration;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let elapsed = start.elapsed();
                let mut snapshots = live.iter().map(|l| l.snapshot());
                let Some(mut all) = snapshots.next() else { continue };
                for s in snapshots {
                    all.merge(&s);
                }
                let s = all.summary();
                let sent: u64 = live.iter().map(|l| l.sent()).sum();
                bar.set_position(elapsed.min(duration).as_millis() as u64);
                bar.set_message(format!(
                    "sent {} ({:.0}/s)  answered {}  errors {}  p50 {}  p99 {}",
                    sent,
                    sent as f64 / elapsed.min(duration).as_secs_f64().max(0.001),
                    all.answered(),
                    all.failed(),
                    format_duration(Duration::from_micros(s.p50.as_micros() as u64)),
                    format_duration(Duration::from_micros(s.p99.as_micros() as u64)),
                ));
            }
        })
    });
    let round = probe::run_round(&prepared, stop).await;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut verdict = judge_round(plan, &round);
    if round.stopped {
        judge::add_stopped(&mut verdict, round.elapsed, plan.pressure.duration);
    }
    let report = report::build(plan, &round, &verdict);
    Ok(Finished { round, verdict, report })
}

/// Finds each target's expectations by its name and judges the round.
pub fn judge_round(plan: &Plan, round: &RoundResult) -> Verdict {
    let targets = plan.targets();
    judge::judge(
        round
            .targets
            .iter()
            // every result is of one of the plan's targets
            .filter_map(|r| Some((&r.id, targets.iter().find(|(n, _)| r.id == *n)?.1, &r.stats))),
        &plan.expect,
    )
}

fn start_progress(plan: &Plan) -> ProgressBar {
    let bar = ProgressBar::new(plan.pressure.duration.as_millis() as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:20} {msg}") {
        bar.set_style(style);
    }
    let rate = match plan.pressure.rate {
        Rate::Fixed(q) => format!("{q} qps"),
        Rate::Max => "max rate".into(),
    };
    bar.println(format!(
        "{} {}: {} target(s) at {rate} for {}, timeout {}",
        plan.kind,
        plan.name,
        plan.targets().len(),
        format_duration(plan.pressure.duration),
        format_duration(plan.pressure.timeout)
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
