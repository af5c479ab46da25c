//! The open-loop pressure engine, shared by every mode.
//!
//! A mode supplies one [`Attempt`] ("send one request, classify the outcome"); the engine
//! decides when each attempt leaves. At a fixed rate, slot `i` is due at `start + i/qps`
//! and leaves then whatever earlier attempts did; when it has to wait for a free worker,
//! its latency is measured from that intended time, so a stalled server shows up in the
//! percentiles instead of hiding (no coordinated omission). At most `max_in_flight` attempts run at once; a slot that
//! could not leave before the sending window closed is counted as unsent. Each worker
//! records into one of a few shards (an HDR histogram and counters) merged at the end:
//! memory stays flat in the number of requests.

mod stats;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use stats::{ErrorKind, LatencySummary, Stats};

use crate::plan::Rate;

/// What one attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered with this code (HTTP status, DNS rcode).
    Answered(u16),
    /// No answer: why.
    Failed(ErrorKind),
}

/// One attempt against one target: the only thing a mode gives the engine.
pub trait Attempt: Send + Sync + 'static {
    fn attempt(&self) -> impl Future<Output = Outcome> + Send;

    /// One example message per error kind seen, to say why attempts failed.
    fn error_samples(&self) -> Vec<(ErrorKind, String)> {
        Vec::new()
    }
}

/// The first message of each error kind, kept without locking once set.
#[derive(Default)]
pub struct ErrorSamples([std::sync::OnceLock<String>; 8]);

impl ErrorSamples {
    /// Keeps `message()` as the example of `kind` unless one is kept already.
    pub fn note(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let slot = &self.0[kind as usize];
        if slot.get().is_none() {
            let _ = slot.set(message());
        }
    }

    pub fn all(&self) -> Vec<(ErrorKind, String)> {
        ErrorKind::ALL
            .iter()
            .filter_map(|k| self.0[*k as usize].get().map(|m| (*k, m.clone())))
            .collect()
    }
}

/// How to press one target.
#[derive(Clone, Debug)]
pub struct Load {
    pub rate: Rate,
    pub duration: Duration,
    pub timeout: Duration,
    pub max_in_flight: u32,
}

impl Load {
    /// Slots planned for a fixed rate; `None` at the maximum rate.
    pub fn planned(&self) -> Option<u64> {
        match self.rate {
            Rate::Fixed(q) => Some(((q * self.duration.as_secs_f64()).round() as u64).max(1)),
            Rate::Max => None,
        }
    }
}

/// A stop signal, passed in so callers (Ctrl-C, SIGTERM, tests) control it.
#[derive(Clone, Default)]
pub struct Stop(Arc<(AtomicBool, Notify)>);

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

const SHARDS: usize = 8;

/// The shards a target's workers record into, readable while the target is pressed
/// (for progress lines), and per-shard counts of attempts sent, each on its own cache line.
pub struct Live {
    shards: Vec<std::sync::Mutex<Stats>>,
    started: Vec<Padded>,
}

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

impl Live {
    pub fn new(load: &Load) -> Arc<Self> {
        let max = highest_latency(load);
        Arc::new(Live {
            shards: (0..SHARDS).map(|_| std::sync::Mutex::new(Stats::new(max))).collect(),
            started: (0..SHARDS).map(|_| Padded::default()).collect(),
        })
    }

    /// Attempts that left so far (answered or not).
    pub fn sent(&self) -> u64 {
        self.started.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }

    /// Everything recorded so far, merged.
    pub fn snapshot(&self) -> Stats {
        let mut all = self.shards[0].lock().expect("shard lock").clone();
        for s in &self.shards[1..] {
            all.merge(&s.lock().expect("shard lock"));
        }
        all
    }
}

/// The largest latency worth a histogram bucket: the whole window plus the timeout.
fn highest_latency(load: &Load) -> Duration {
    (load.duration + load.timeout) * 2 + Duration::from_secs(1)
}

/// Presses one target with `attempt` under `load`, starting at `start`, until the
/// sending window closes or `stop` fires; waits for attempts in flight (each bounded by
/// the timeout) and returns the merged statistics.
pub async fn press<A: Attempt>(load: &Load, attempt: Arc<A>, start: Instant, stop: Stop, live: Arc<Live>) -> Stats {
    let planned = load.planned();
    let workers = match planned {
        Some(n) => (load.max_in_flight as u64).min(n) as usize,
        None => load.max_in_flight as usize,
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let (attempt, next, stop, live, load) =
            (attempt.clone(), next.clone(), stop.clone(), live.clone(), load.clone());
        handles.push(tokio::spawn(async move {
            match load.rate {
                Rate::Fixed(qps) => fixed_worker(w, qps, &load, &*attempt, &next, start, &stop, &live).await,
                Rate::Max => max_worker(w, &load, &*attempt, start, &stop, &live).await,
            }
        }));
    }
    for h in handles {
        // A worker only ends by returning; a panic inside a mode is a bug worth surfacing.
        if let Err(e) = h.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    live.snapshot()
}

#[allow(clippy::too_many_arguments)]
async fn fixed_worker<A: Attempt>(
    w: usize,
    qps: f64,
    load: &Load,
    attempt: &A,
    next: &AtomicU64,
    start: Instant,
    stop: &Stop,
    live: &Live,
) {
    let total = load.planned().unwrap_or(0);
    let window_end = start + load.duration;
    let shard = &live.shards[w % SHARDS];
    loop {
        if stop.is_stopped() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let due = start + Duration::from_secs_f64(i as f64 / qps);
        let now = Instant::now();
        // Latency counts from the intended time when the slot waited for a free worker
        // (that wait is the target's doing); a worker that was idle and woke for the slot
        // counts from its wake-up, so the timer's own millisecond granularity is not
        // charged to the target.
        let from = if due > now {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.stopped() => return,
            }
            Instant::now()
        } else if now >= window_end {
            shard.lock().expect("shard lock").unsent += 1;
            continue;
        } else {
            due
        };
        live.started[w % SHARDS].0.fetch_add(1, Ordering::Relaxed);
        one(load, attempt, from, shard).await;
    }
}

async fn max_worker<A: Attempt>(w: usize, load: &Load, attempt: &A, start: Instant, stop: &Stop, live: &Live) {
    let window_end = start + load.duration;
    let shard = &live.shards[w % SHARDS];
    while !stop.is_stopped() && Instant::now() < window_end {
        live.started[w % SHARDS].0.fetch_add(1, Ordering::Relaxed);
        one(load, attempt, Instant::now(), shard).await;
    }
}

/// Sends one attempt and records it, latency counted from `from`.
async fn one<A: Attempt>(load: &Load, attempt: &A, from: Instant, shard: &std::sync::Mutex<Stats>) {
    let outcome = match tokio::time::timeout(load.timeout, attempt.attempt()).await {
        Ok(o) => o,
        Err(_) => Outcome::Failed(ErrorKind::Timeout),
    };
    let latency = from.elapsed();
    shard.lock().expect("shard lock").record(outcome, latency);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Outcome, Duration);
    impl Attempt for Fixed {
        async fn attempt(&self) -> Outcome {
            tokio::time::sleep(self.1).await;
            self.0
        }
    }

    fn load(rate: Rate, ms: u64, timeout_ms: u64, in_flight: u32) -> Load {
        Load {
            rate,
            duration: Duration::from_millis(ms),
            timeout: Duration::from_millis(timeout_ms),
            max_in_flight: in_flight,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sends_exactly_the_planned_slots_on_time() {
        let l = load(Rate::Fixed(100.0), 1000, 50, 16);
        let live = Live::new(&l);
        let s = press(
            &l,
            Arc::new(Fixed(Outcome::Answered(200), Duration::from_millis(2))),
            Instant::now(),
            Stop::new(),
            live,
        )
        .await;
        assert_eq!(s.sent, 100);
        assert_eq!(s.unsent, 0);
        assert_eq!(s.codes.get(&200), Some(&100));
        assert!(s.summary().p99 <= Duration::from_millis(3), "{:?}", s.summary());
    }

    #[tokio::test(start_paused = true)]
    async fn latency_counts_from_the_intended_time_when_in_flight_is_full() {
        // One slot in flight at a time, each attempt takes 30 ms, slots every 10 ms:
        // later slots leave late and their latency must include the wait.
        let l = load(Rate::Fixed(100.0), 200, 1000, 1);
        let live = Live::new(&l);
        let s = press(
            &l,
            Arc::new(Fixed(Outcome::Answered(200), Duration::from_millis(30))),
            Instant::now(),
            Stop::new(),
            live,
        )
        .await;
        assert!(s.sent < 20 && s.sent >= 6, "sent {}", s.sent);
        assert_eq!(s.sent + s.unsent, 20);
        assert!(s.summary().max >= Duration::from_millis(150), "{:?}", s.summary());
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_classified() {
        let l = load(Rate::Fixed(10.0), 1000, 100, 64);
        let live = Live::new(&l);
        let s = press(
            &l,
            Arc::new(Fixed(Outcome::Answered(200), Duration::from_secs(5))),
            Instant::now(),
            Stop::new(),
            live,
        )
        .await;
        assert_eq!(s.error(ErrorKind::Timeout), 10);
        assert_eq!(s.answered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_round_early() {
        let l = load(Rate::Fixed(10.0), 10_000, 100, 64);
        let live = Live::new(&l);
        let stop = Stop::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(450)).await;
            s2.stop();
        });
        let s = press(
            &l,
            Arc::new(Fixed(Outcome::Answered(204), Duration::from_millis(1))),
            Instant::now(),
            stop,
            live,
        )
        .await;
        assert_eq!(s.sent, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn max_rate_is_closed_loop_at_the_in_flight_bound() {
        let l = load(Rate::Max, 100, 100, 4);
        let live = Live::new(&l);
        let s = press(
            &l,
            Arc::new(Fixed(Outcome::Answered(200), Duration::from_millis(10))),
            Instant::now(),
            Stop::new(),
            live,
        )
        .await;
        assert_eq!(s.sent, 40);
    }
}
