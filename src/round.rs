//! One round of a task, start to finish: prepare the targets, press them (watched, when
//! asked, through [`Watch`]), judge, and build the report. `kpatrol run` and
//! `kpatrol-probe` both come through here, so a laptop run and a pod run agree.

use std::sync::Arc;

use crate::judge::{self, Verdict};
use crate::plan::Plan;
use crate::pressure::{Live, Stop};
use crate::probe::{self, Mounts, ProbeError};
use crate::report::{self, RoundReport};
use crate::results::RoundResult;

/// A finished round: the plan as it ran, what was measured, the verdict, the report.
pub struct Finished {
    /// The task's plan with the target names the round used (some hold what preparing
    /// found, see [`crate::modes::Prepared::planned_as`]): what telemetry reads with it.
    pub plan: Plan,
    pub round: RoundResult,
    pub verdict: Verdict,
    pub report: RoundReport,
}

/// Watches a round while it runs: `kpatrol run`'s progress line (in cli).
pub trait Watch {
    /// The round's targets are being pressed; `live` is each target's statistics so far.
    fn started(&mut self, plan: &Plan, live: Vec<Arc<Live>>);
    /// The pressure is over; judging follows.
    fn ended(&mut self);
}

/// Runs one round of `plan` and judges it. `stop` ends the round early; what was
/// measured until then is still judged and reported.
pub async fn execute(plan: &Plan, mounts: &Mounts, stop: Stop) -> Result<(RoundReport, Verdict), ProbeError> {
    execute_round(plan, mounts, stop, None)
        .await
        .map(|f| (f.report, f.verdict))
}

/// Like [`execute`], keeping the measurements (for telemetry), watched by `watch`.
pub async fn execute_round(
    plan: &Plan,
    mounts: &Mounts,
    stop: Stop,
    watch: Option<&mut (dyn Watch + Send)>,
) -> Result<Finished, ProbeError> {
    let prepared = probe::prepare(plan, mounts).await?;
    let mut plan = plan.clone();
    for (from, to) in prepared.renamed() {
        plan.mode.rename_target(from.as_str(), to.as_str());
    }
    let plan = &plan;
    let round = match watch {
        Some(w) => {
            w.started(plan, prepared.live().to_vec());
            let round = probe::run_round(&prepared, stop).await;
            w.ended();
            round
        }
        None => probe::run_round(&prepared, stop).await,
    };
    let mut verdict = judge_round(plan, &round);
    if round.stopped {
        judge::add_stopped(&mut verdict, round.elapsed, plan.pressure.duration);
    }
    let report = report::build(plan, &round, &verdict);
    Ok(Finished {
        plan: plan.clone(),
        round,
        verdict,
        report,
    })
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
