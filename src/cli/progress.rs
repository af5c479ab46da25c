//! `kpatrol run`'s progress line on a terminal: the task, then every 200 ms what was sent,
//! answered and failed, and the latency so far, from the round's live statistics.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::duration::format_duration;
use crate::plan::{Plan, Rate};
use crate::pressure::Live;
use crate::round::Watch;

/// The progress line of one round.
#[derive(Default)]
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Watch for Progress {
    fn started(&mut self, plan: &Plan, live: Vec<Arc<Live>>) {
        let bar = start(plan);
        let duration = plan.pressure.duration;
        let shown = bar.clone();
        self.ticker = Some(tokio::spawn(async move {
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
                shown.set_position(elapsed.min(duration).as_millis() as u64);
                shown.set_message(format!(
                    "sent {} ({:.0}/s)  answered {}  errors {}  p50 {}  p99 {}",
                    sent,
                    sent as f64 / elapsed.min(duration).as_secs_f64().max(0.001),
                    all.answered(),
                    all.failed(),
                    format_duration(Duration::from_micros(s.p50.as_micros() as u64)),
                    format_duration(Duration::from_micros(s.p99.as_micros() as u64)),
                ));
            }
        }));
        self.bar = Some(bar);
    }

    fn ended(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// A round quit by a second signal ends here: the line goes with it.
    fn drop(&mut self) {
        self.ended();
    }
}

fn start(plan: &Plan) -> ProgressBar {
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
