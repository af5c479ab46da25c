//! The open-loop pressure engine, shared by every mode.
//!
//! A mode supplies one [`Attempt`] ("send one request, classify the outcome"); the engine
//! decides when each attempt leaves. At a fixed rate, slot `i` is due at `start + i/qps`
//! and leaves then whatever earlier attempts did; when it has to wait for a free worker,
//! its latency is measured from that intended time, so a stalled server shows up in the
//! percentiles instead of hiding (no coordinated omission). At most `max_in_flight` attempts run at once; a slot that
//! could not leave before the sending window closed is counted as unsent. Each worker
//! records into a shard (an HDR histogram and counters): its own at the maximum rate (up
//! to 64 workers), one per 5,000 qps at a fixed rate; the shards are merged once at the
//! end, and memory stays flat in the number of requests. At the maximum rate, a mode whose
//! attempt can be copied with connections of its own runs on lanes, a thread each
//! ([`press_lanes`]).

mod stats;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use stats::{ErrorKind, LatencySummary, Stat, Stats};

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

    /// A copy of this attempt for another lane (see [`press_lanes`]): the same target, with
    /// connections of its own, since a connection belongs to the thread that opened it.
    /// `None`, the default: the attempt's workers share the process's runtime.
    fn lane(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// The first message of each error kind, kept without locking once set, with the values
/// of Secret-sourced headers redacted: samples end up in reports, logs and termination
/// messages, and a target that echoes the request would otherwise show them.
#[derive(Default)]
pub struct ErrorSamples {
    samples: [std::sync::OnceLock<String>; ErrorKind::COUNT],
    secrets: Vec<String>,
}

impl ErrorSamples {
    /// Samples that never show any of `secrets`.
    pub fn redacting(secrets: Vec<String>) -> Self {
        ErrorSamples {
            samples: Default::default(),
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// The secrets this redacts, for messages built from fragments (see [`redact_fragment`]).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Keeps `message()` as the example of `kind` unless one is kept already.
    pub fn note(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        if let Some(slot) = self.samples.get(kind as usize)
            && slot.get().is_none()
        {
            let _ = slot.set(redact(&message(), &self.secrets));
        }
    }

    pub fn all(&self) -> Vec<(ErrorKind, String)> {
        ErrorKind::ALL
            .iter()
            .filter_map(|k| self.samples.get(*k as usize)?.get().map(|m| (*k, m.clone())))
            .collect()
    }
}

/// What stands in for a secret in a sample.
pub const REDACTED: &str = "<redacted>";

/// `text` with every occurrence of every secret replaced by [`REDACTED`].
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// Like [`redact`], for text cut from a stream (bytes a target sent back): it may end
/// inside a secret, so a tail that begins a secret is redacted as well.
pub fn redact_fragment(text: &str, secrets: &[String]) -> String {
    let mut out = redact(text, secrets);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        // the longest tail of `out` that is a proper beginning of `s`
        let tail = (1..s.len().min(out.len() + 1))
            .rev()
            .find(|&n| s.is_char_boundary(n) && out.ends_with(&s[..n]));
        if let Some(n) = tail {
            out.truncate(out.len() - n);
            out.push_str(REDACTED);
        }
    }
    out
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

/// How long attempts in flight may go on after a stop, whatever their timeout: a pod gets
/// 30 s between SIGTERM and SIGKILL by default, and rendering gives agents this plus 10 s
/// for the report and telemetry.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// A stop signal, passed in so callers (Ctrl-C, SIGTERM, tests) control it, with the time
/// attempts in flight get to finish once it fired (the drain).
#[derive(Clone)]
pub struct Stop(Arc<StopInner>);

struct StopInner {
    stopped: AtomicBool,
    notify: Notify,
    drain: Duration,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::with_drain(DEFAULT_DRAIN)
    }
}

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stop after which attempts in flight get at most `drain`.
    pub fn with_drain(drain: Duration) -> Self {
        Stop(Arc::new(StopInner {
            stopped: AtomicBool::new(false),
            notify: Notify::new(),
            drain,
        }))
    }

    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the drain after a stop is over.
    pub async fn drained(&self) {
        self.stopped().await;
        tokio::time::sleep(self.0.drain).await;
    }
}

/// Shards at the most at a fixed rate.
const SHARDS: usize = 8;

/// Rate one shard takes at a fixed rate. A record holds its shard's lock for well under a
/// microsecond, so even this many per second keep a lock free almost all the time.
const RATE_PER_SHARD: f64 = 5000.0;

/// The shards a target's workers record into, readable while the target is pressed
/// (for progress lines), and per-shard counts of attempts sent, each on its own cache line.
pub struct Live {
    shards: Vec<std::sync::Mutex<Stats>>,
    started: Vec<Padded>,
    highest: Duration,
}

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

impl Live {
    pub fn new(load: &Load) -> Arc<Self> {
        let max = highest_latency(load);
        let n = shards(load.rate, worker_cap(load));
        Arc::new(Live {
            shards: (0..n).map(|_| std::sync::Mutex::new(Stats::new(max))).collect(),
            started: (0..n).map(|_| Padded::default()).collect(),
            highest: max,
        })
    }

    /// Attempts that left so far (answered or not).
    pub fn sent(&self) -> u64 {
        self.started.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }

    /// Everything recorded so far, merged.
    pub fn snapshot(&self) -> Stats {
        let mut all = Stats::new(self.highest);
        for s in &self.shards {
            all.merge(&lock(s));
        }
        all
    }

    /// Everything recorded, merged, once nothing records any more: the first shard's
    /// statistics are moved out rather than copied, since every target finishes at about
    /// the same time and a copy each would double the histograms' memory at its peak.
    fn finish(&self) -> Stats {
        let Some((first, rest)) = self.shards.split_first() else {
            return Stats::new(self.highest);
        };
        let mut all = {
            let mut first = lock(first);
            let taken = first.taken();
            std::mem::replace(&mut *first, taken)
        };
        for s in rest {
            all.merge(&lock(s));
        }
        all
    }

    /// Worker `w`'s shard and its count of attempts sent.
    #[allow(clippy::indexing_slicing)] // `new` makes at least one shard, and as many counts
    fn shard(&self, w: usize) -> (&std::sync::Mutex<Stats>, &Padded) {
        (
            &self.shards[w % self.shards.len()],
            &self.started[w % self.started.len()],
        )
    }
}

/// A lock that a panicking holder cannot take away: the statistics and connections behind
/// it are valid between any two statements, so a poisoned lock is used as it is.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shards for a rate: each costs a histogram, so a target at a modest rate gets one.
fn shards(rate: Rate, workers: usize) -> usize {
    match rate {
        Rate::Fixed(q) => ((q / RATE_PER_SHARD).ceil() as usize).clamp(1, SHARDS),
        Rate::Max => workers.clamp(1, MAX_RATE_SHARDS),
    }
}

/// Shards at the maximum rate: one per worker (its own statistics, merged once at the
/// end), up to this many; beyond, workers share. Measured against 8 shared shards on
/// loopback nginx (scripts/bench-http's setup, 2 threads, medians of 3): at 50 connections
/// 102k against 91k requests/s and 8.9 against 9.9 µs CPU per request for 1.7 MB more RSS;
/// at 500 the same rate for 3.4 MB more (one shard per worker without this cap: 19 MB).
const MAX_RATE_SHARDS: usize = 64;

/// The largest latency worth a histogram bucket: the whole window plus the timeout.
fn highest_latency(load: &Load) -> Duration {
    (load.duration + load.timeout) * 2 + Duration::from_secs(1)
}

/// Workers a target may need at once: `max_in_flight`, or fewer when fewer slots are planned.
fn worker_cap(load: &Load) -> usize {
    match load.planned() {
        Some(n) => (load.max_in_flight as u64).min(n) as usize,
        None => load.max_in_flight as usize,
    }
}

/// What every worker of one target shares.
struct Crew<A> {
    load: Load,
    attempt: Arc<A>,
    start: Instant,
    stop: Stop,
    live: Arc<Live>,
    /// The next slot to claim (fixed rate).
    next: AtomicU64,
    /// Workers started so far, and how many may be.
    spawned: AtomicUsize,
    cap: usize,
    /// Workers not busy with an attempt (waiting for a slot, or about to claim one).
    idle: AtomicUsize,
    /// Every worker's handle, for [`press`] to wait on (and surface a panic).
    handles: tokio::sync::mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
}

/// Starts worker `w` of the crew.
fn spawn_worker<A: Attempt>(crew: &Arc<Crew<A>>, w: usize) {
    let c = crew.clone();
    let handle = tokio::spawn(async move {
        match c.load.rate {
            Rate::Fixed(qps) => fixed_worker(w, qps, &c).await,
            Rate::Max => max_worker(w, &c).await,
        }
    });
    // The receiver lives until every worker has ended, this one included.
    let _ = crew.handles.send(handle);
}

/// Presses one target with `attempt` under `load`, starting at `start`, until the
/// sending window closes or `stop` fires; waits for attempts in flight (each bounded by
/// the timeout) and returns the merged statistics.
///
/// At the maximum rate every worker starts at once (the loop is closed at
/// `max_in_flight`). At a fixed rate workers start as they are needed: one waits for the
/// next slot, and a worker leaving on a slot while none is left waiting starts another,
/// up to `max_in_flight`. A target at 10 qps answering in a millisecond keeps one or two,
/// where a worker per slot of `max_in_flight` would cost memory for nothing.
pub async fn press<A: Attempt>(load: &Load, attempt: Arc<A>, start: Instant, stop: Stop, live: Arc<Live>) -> Stats {
    let cap = worker_cap(load);
    let first = match load.rate {
        Rate::Fixed(_) => cap.min(1),
        Rate::Max => cap,
    };
    work(load, attempt, start, stop, &live, 0..first).await;
    finish(&live, start)
}

/// Presses one target at the maximum rate on several lanes: threads of their own, each
/// with a single-threaded runtime, as `pgbench -j` and `wrk -t` have a thread per share
/// of the connections. Worker `w` runs on lane `w % n` with attempt `attempts[w % n]`, so
/// a connection stays with the thread that opened it; the statistics are shared as on
/// one runtime, and the error samples are each kind's first over the lanes.
///
/// On one multi-threaded runtime the workers hop between threads, and with them the
/// wake-ups of the server's processes: against PostgreSQL (a process per connection) on
/// 2 cores with 16 connections, 2 lanes made 1.18× the queries per second of 2 runtime
/// threads (medians of 6 alternating runs: 56.9k against 48.2k/s). Not every mode gains:
/// the HTTP fast path against nginx (one event loop for every connection), 2 threads and
/// 50 connections, made 0.85× with lanes (77k against 90k/s), so it keeps the shared
/// runtime.
pub async fn press_lanes<A: Attempt>(
    load: &Load,
    attempts: Vec<Arc<A>>,
    start: Instant,
    stop: Stop,
    live: Arc<Live>,
) -> (Stats, Vec<(ErrorKind, String)>) {
    let n = attempts.len().max(1);
    let cap = worker_cap(load);
    let mut running = Vec::new();
    for (k, attempt) in attempts.into_iter().enumerate() {
        let (load, stop, live) = (load.clone(), stop.clone(), live.clone());
        running.push(lane_runtime(k).spawn(async move {
            work(&load, attempt.clone(), start, stop, &live, (k..cap).step_by(n)).await;
            attempt.error_samples()
        }));
    }
    let mut samples: Vec<(ErrorKind, String)> = Vec::new();
    for r in running {
        match r.await {
            Ok(found) => {
                for (kind, message) in found {
                    if !samples.iter().any(|(k, _)| *k == kind) {
                        samples.push((kind, message));
                    }
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // cancelled, which a lane's runtime (kept for the process's life) never does;
            // its statistics are in `live` all the same
            Err(_) => {}
        }
    }
    samples.sort_by_key(|(k, _)| *k);
    (finish(&live, start), samples)
}

/// The lanes [`press_lanes`] can use: as many as the process's runtime has threads.
pub fn lanes() -> usize {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => h.metrics().num_workers(),
        _ => 1,
    }
}

/// Lane `k`'s runtime: a thread of its own, started when first needed and kept for the
/// process's life (later rounds reuse it, and connections it opened stay valid).
fn lane_runtime(k: usize) -> tokio::runtime::Handle {
    static LANES: std::sync::Mutex<Vec<tokio::runtime::Handle>> = std::sync::Mutex::new(Vec::new());
    let mut lanes = lock(&LANES);
    while lanes.len() <= k {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = format!("kpatrol-lane-{}", lanes.len());
        let started = std::thread::Builder::new().name(name).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let handle = started
            .map_err(|e| e.to_string())
            .and_then(|_| rx.recv().map_err(|e| e.to_string()))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match handle {
            Ok(h) => lanes.push(h),
            // without a thread of its own, a lane runs on the caller's runtime
            Err(_) => return tokio::runtime::Handle::current(),
        }
    }
    lanes.get(k).cloned().unwrap_or_else(tokio::runtime::Handle::current)
}

/// Runs `workers` of one target's crew until each has ended (by itself, or cut when the
/// drain after a stop is over); their statistics are in `live`.
async fn work<A: Attempt>(
    load: &Load,
    attempt: Arc<A>,
    start: Instant,
    stop: Stop,
    live: &Arc<Live>,
    workers: impl Iterator<Item = usize> + Clone,
) {
    let cap = worker_cap(load);
    let first = workers.clone().count();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let crew = Arc::new(Crew {
        load: load.clone(),
        attempt,
        start,
        stop,
        live: live.clone(),
        next: AtomicU64::new(0),
        spawned: AtomicUsize::new(first),
        cap,
        idle: AtomicUsize::new(first),
        handles: tx,
    });
    for w in workers {
        spawn_worker(&crew, w);
    }
    // Only workers hold the crew now: the channel closes when the last one ends.
    let drained = crew.stop.clone();
    drop(crew);
    // Workers end by themselves, or are cut when the drain after a stop is over.
    let mut handles = Vec::new();
    let mut cut = false;
    let drain = drained.drained();
    tokio::pin!(drain);
    loop {
        tokio::select! {
            h = rx.recv() => match h {
                Some(h) if cut => {
                    h.abort();
                    handles.push(h);
                }
                Some(h) => handles.push(h),
                None => break,
            },
            _ = &mut drain, if !cut => {
                cut = true;
                handles.iter().for_each(|h| h.abort());
            }
        }
    }
    for h in handles {
        // A worker only ends by returning; a panic inside a mode is a bug worth surfacing.
        if let Err(e) = h.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// The statistics of a target whose workers have all ended, merged.
fn finish(live: &Live, start: Instant) -> Stats {
    let mut stats = live.finish();
    // attempts the drain cut got no answer in the time they had
    for _ in stats.sent..live.sent() {
        stats.record(Outcome::Failed(ErrorKind::Timeout), Duration::ZERO);
    }
    stats.elapsed = start.elapsed();
    stats
}

/// Called by a worker about to run an attempt: when no other worker is left waiting for
/// the next slot, starts one (up to the cap), so that slot still leaves on time.
fn leaving<A: Attempt>(crew: &Arc<Crew<A>>) {
    if crew.idle.fetch_sub(1, Ordering::AcqRel) == 1 && crew.spawned.load(Ordering::Relaxed) < crew.cap {
        let w = crew.spawned.fetch_add(1, Ordering::AcqRel);
        if w < crew.cap {
            crew.idle.fetch_add(1, Ordering::AcqRel);
            spawn_worker(crew, w);
        }
    }
}

async fn fixed_worker<A: Attempt>(w: usize, qps: f64, crew: &Arc<Crew<A>>) {
    let (load, start, stop, live) = (&crew.load, crew.start, &crew.stop, &*crew.live);
    let total = load.planned().unwrap_or(0);
    let window_end = start + load.duration;
    let (shard, started) = live.shard(w);
    loop {
        if stop.is_stopped() {
            return;
        }
        let i = crew.next.fetch_add(1, Ordering::Relaxed);
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
            lock(shard).unsent += 1;
            continue;
        } else {
            due
        };
        started.0.fetch_add(1, Ordering::Relaxed);
        leaving(crew);
        one(load, &*crew.attempt, from, shard).await;
        crew.idle.fetch_add(1, Ordering::AcqRel);
    }
}

async fn max_worker<A: Attempt>(w: usize, crew: &Crew<A>) {
    let (load, stop, live) = (&crew.load, &crew.stop, &*crew.live);
    let window_end = crew.start + load.duration;
    let (shard, started) = live.shard(w);
    while !stop.is_stopped() && Instant::now() < window_end {
        started.0.fetch_add(1, Ordering::Relaxed);
        one(load, &*crew.attempt, Instant::now(), shard).await;
    }
}

/// Sends one attempt and records it, latency counted from `from`. An answer that came
/// later than the timeout is a timeout: the timer fires on whole milliseconds and late
/// when the runtime is busy, so the attempt's own time is measured as well.
async fn one<A: Attempt>(load: &Load, attempt: &A, from: Instant, shard: &std::sync::Mutex<Stats>) {
    let left = Instant::now();
    let outcome = tokio::time::timeout(load.timeout, attempt.attempt()).await;
    let end = Instant::now();
    let outcome = match outcome {
        Ok(Outcome::Answered(_)) if end - left > load.timeout => Outcome::Failed(ErrorKind::Timeout),
        Ok(o) => o,
        Err(_) => Outcome::Failed(ErrorKind::Timeout),
    };
    lock(shard).record(outcome, end - from);
}

/// Memory of the process besides the targets: code, runtime, task and report (a release
/// build pressing one target peaks at about 9 MB).
const BASE_BYTES: u64 = 12 << 20;
/// Per target besides histograms and attempts in flight: the prepared attempt, its live
/// counters, its result, report and checks (about 10 KB measured).
const TARGET_BYTES: u64 = 16 << 10;
/// Per attempt in flight: its worker task and connection (a 4 KiB read buffer among it).
const IN_FLIGHT_BYTES: u64 = 8 << 10;

/// Bytes a round may take at most, for a warning when a task cannot fit its pod's memory
/// limit: a base, plus per target its histograms (one per shard, sized for latencies up to
/// the timeout) and the attempts it can have in flight. A fixed rate has at most about
/// `qps × timeout` in flight (every attempt ends by its timeout), the maximum rate
/// `max_in_flight`. That is the bound for targets that answer slowly or not at all; targets
/// that answer quickly take much less (measured: about 40 KiB per target at 10 qps).
/// Calibrated against peak RSS of `kpatrol run` with 1 to 500 targets against `kpatrol serve`.
pub fn memory_estimate(rate: Rate, timeout: Duration, max_in_flight: u32, targets: usize) -> u64 {
    let in_flight = match rate {
        Rate::Fixed(q) => ((q * timeout.as_secs_f64()).ceil() as u64 + 1).min(max_in_flight as u64),
        Rate::Max => max_in_flight as u64,
    };
    let per_target = TARGET_BYTES
        + shards(rate, max_in_flight as usize) as u64 * histogram_bytes(timeout)
        + in_flight * IN_FLIGHT_BYTES;
    BASE_BYTES + targets as u64 * per_target
}

/// Bytes of a latency histogram (3 significant digits, microseconds, 32-bit counts) that
/// holds latencies up to `highest`: 2048 values in the first bucket, 1024 more per doubling.
fn histogram_bytes(highest: Duration) -> u64 {
    let us = highest.as_micros().min(u64::MAX as u128) as u64;
    let mut buckets = 1;
    let mut covered: u64 = 2048;
    while covered <= us {
        covered = covered.saturating_mul(2);
        buckets += 1;
    }
    (buckets + 1) * 1024 * 4
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

    /// Notes the threads it ran on; answers (or fails with `fails`) after a millisecond.
    struct OnThread {
        threads: std::sync::Mutex<std::collections::BTreeSet<String>>,
        ran: AtomicU64,
        fails: Option<ErrorKind>,
    }
    impl OnThread {
        fn new(fails: Option<ErrorKind>) -> Arc<Self> {
            Arc::new(OnThread {
                threads: Default::default(),
                ran: AtomicU64::new(0),
                fails,
            })
        }
    }
    impl Attempt for OnThread {
        async fn attempt(&self) -> Outcome {
            let name = std::thread::current().name().unwrap_or_default().to_string();
            lock(&self.threads).insert(name);
            self.ran.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.fails.map_or(Outcome::Answered(200), Outcome::Failed)
        }
        fn error_samples(&self) -> Vec<(ErrorKind, String)> {
            self.fails.map(|k| (k, format!("{k:?}"))).into_iter().collect()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_keep_each_attempt_on_a_thread_of_its_own_and_merge_what_they_saw() {
        assert_eq!(lanes(), 2);
        let l = load(Rate::Max, 300, 1000, 4);
        let attempts = [OnThread::new(None), OnThread::new(Some(ErrorKind::Refused))];
        let (s, samples) = press_lanes(&l, attempts.to_vec(), Instant::now(), Stop::new(), Live::new(&l)).await;
        for (k, a) in attempts.iter().enumerate() {
            let only = std::collections::BTreeSet::from([format!("kpatrol-lane-{k}")]);
            assert_eq!(*lock(&a.threads), only, "lane {k}");
        }
        let ran = attempts.each_ref().map(|a| a.ran.load(Ordering::Relaxed));
        // two workers per lane, each about 1 ms per attempt for 300 ms (about 500 each;
        // far fewer when the rest of the suite keeps the cores busy)
        assert!(ran.iter().all(|&n| n >= 20), "{ran:?}");
        assert_eq!(s.sent, ran[0] + ran[1]);
        assert_eq!(s.codes.get(&200), Some(&ran[0]));
        assert_eq!(s.error(ErrorKind::Refused), ran[1]);
        assert_eq!(samples, vec![(ErrorKind::Refused, "Refused".to_string())]);
        // a second round reuses the lanes' threads
        let (again, _) = press_lanes(&l, attempts.to_vec(), Instant::now(), Stop::new(), Live::new(&l)).await;
        assert!(again.sent >= 40, "{}", again.sent);
        assert_eq!(lock(&attempts[1].threads).len(), 1);
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
    async fn a_stop_cuts_attempts_in_flight_after_the_drain() {
        // answers take 100 s and the timeout is 600 s: only the drain ends them
        let l = load(Rate::Fixed(10.0), 10_000, 600_000, 64);
        let live = Live::new(&l);
        let stop = Stop::with_drain(Duration::from_millis(300));
        let s2 = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(450)).await;
            s2.stop();
        });
        let t0 = Instant::now();
        let attempt = Arc::new(Fixed(Outcome::Answered(200), Duration::from_secs(100)));
        let s = press(&l, attempt, t0, stop, live).await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(750),
            "stop at 450 ms, then a 300 ms drain"
        );
        assert_eq!(s.sent, 5);
        assert_eq!(s.error(ErrorKind::Timeout), 5);
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

    #[test]
    fn histogram_bytes_match_what_a_histogram_allocates() {
        for ms in [1, 100, 1000, 30_000] {
            let mut s = Stats::new(Duration::from_secs(60));
            s.record(Outcome::Answered(200), Duration::from_millis(ms));
            let real = s.hist.distinct_values() as u64 * 4;
            assert_eq!(histogram_bytes(Duration::from_millis(ms)), real, "{ms} ms");
        }
    }

    #[test]
    fn memory_estimate_grows_with_targets_rate_and_timeout() {
        let one = memory_estimate(Rate::Fixed(10.0), Duration::from_secs(1), 256, 1);
        let many = memory_estimate(Rate::Fixed(10.0), Duration::from_secs(1), 256, 500);
        assert!(one > BASE_BYTES && one < BASE_BYTES + (256 << 10));
        assert!(many - one < 499 * (256 << 10), "{many}");
        let fast = memory_estimate(Rate::Fixed(1000.0), Duration::from_secs(1), 256, 500);
        let slow = memory_estimate(Rate::Fixed(10.0), Duration::from_secs(30), 256, 500);
        assert!(fast > many && slow > many);
        // in flight is bounded by max_in_flight whatever the rate
        assert_eq!(
            memory_estimate(Rate::Fixed(1000.0), Duration::from_secs(1), 16, 500),
            memory_estimate(Rate::Fixed(2000.0), Duration::from_secs(1), 16, 500)
        );
        assert!(memory_estimate(Rate::Max, Duration::from_secs(1), 256, 500) > fast);
    }

    #[tokio::test(start_paused = true)]
    async fn workers_started_as_needed_keep_every_slot_on_time() {
        // Workers start one at a time, as slots find none waiting: quick answers need two,
        // slow ones about rate × latency, and no slot may wait for a worker to start.
        let l = load(Rate::Fixed(100.0), 1000, 1000, 64);
        let live = Live::new(&l);
        let attempt = Arc::new(Fixed(Outcome::Answered(200), Duration::from_millis(1)));
        let s = press(&l, attempt, Instant::now(), Stop::new(), live).await;
        assert_eq!((s.sent, s.unsent), (100, 0));
        assert!(s.summary().max <= Duration::from_millis(2), "{:?}", s.summary());
        let slow = Arc::new(Fixed(Outcome::Answered(200), Duration::from_millis(95)));
        let l = load(Rate::Fixed(100.0), 500, 1000, 64);
        let s = press(&l, slow, Instant::now(), Stop::new(), Live::new(&l)).await;
        // 95 ms answers every 10 ms: about ten in flight, every slot on time
        assert_eq!((s.sent, s.unsent), (50, 0));
        assert!(s.summary().max < Duration::from_millis(97), "{:?}", s.summary());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_after_the_timeout_is_a_timeout() {
        // 5 ms timeout, answers at 5.5 ms: the timer may fire after the answer is in
        struct Late;
        impl Attempt for Late {
            async fn attempt(&self) -> Outcome {
                tokio::time::advance(Duration::from_micros(5500)).await;
                Outcome::Answered(200)
            }
        }
        let l = load(Rate::Fixed(10.0), 500, 5, 4);
        let s = press(&l, Arc::new(Late), Instant::now(), Stop::new(), Live::new(&l)).await;
        assert_eq!((s.answered(), s.error(ErrorKind::Timeout)), (0, 5));
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
