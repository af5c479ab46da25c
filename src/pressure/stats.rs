//! Statistics of one target (or one worker shard): an HDR latency histogram in
//! microseconds, counts by answer code and by error kind, sent and unsent slots.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::Outcome;

/// Why an attempt got no answer: a fixed set, the same for every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Timeout,
    Refused,
    Reset,
    Dns,
    Tls,
    Protocol,
    /// A DNS reply over UDP with the TC bit: the answer did not fit.
    Truncated,
    /// The server refused the credentials (SQL: a wrong user or password).
    Auth,
    /// The server answered the query with an error (SQL: syntax, a cancelled statement).
    Query,
    Other,
}

impl ErrorKind {
    /// How many kinds there are: the size of every per-kind array.
    pub const COUNT: usize = 10;
    pub const ALL: [ErrorKind; Self::COUNT] = [
        ErrorKind::Timeout,
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::Protocol,
        ErrorKind::Truncated,
        ErrorKind::Auth,
        ErrorKind::Query,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Auth => "auth",
            ErrorKind::Query => "query",
            ErrorKind::Other => "other",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of answered attempts, microseconds. Counts are 32-bit (half the memory of
    /// 64-bit ones, per target and shard): a count saturates at 4.29 billion in one bucket,
    /// out of reach of a round.
    pub hist: Histogram<u32>,
    pub codes: BTreeMap<u16, u64>,
    errors: [u64; ErrorKind::COUNT],
    pub sent: u64,
    pub unsent: u64,
    /// How long the target was pressed, from its start until its last attempt ended (the
    /// time a rate is taken over).
    pub elapsed: Duration,
    /// Latencies above this (microseconds) are recorded as this.
    highest: u64,
}

/// A histogram made with constant, valid settings (precision 3 or 0, bounds 1..2), which
/// hdrhistogram only refuses for a precision above 5 or a low bound of 0.
#[allow(clippy::expect_used)]
fn histogram(made: Result<Histogram<u32>, hdrhistogram::CreationError>) -> Histogram<u32> {
    made.expect("constant histogram settings are valid")
}

/// Latency figures of answered attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    #[serde(with = "ms")]
    pub min: Duration,
    #[serde(with = "ms")]
    pub mean: Duration,
    #[serde(with = "ms")]
    pub p50: Duration,
    #[serde(with = "ms")]
    pub p90: Duration,
    #[serde(with = "ms")]
    pub p95: Duration,
    #[serde(with = "ms")]
    pub p99: Duration,
    #[serde(with = "ms")]
    pub max: Duration,
}

/// One figure of a [`LatencySummary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    Min,
    Mean,
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 7] = [
        Stat::Min,
        Stat::Mean,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Max,
    ];

    /// The figure's name in reports (`mean`, `p99`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
        }
    }

    /// The figure a name in reports stands for.
    pub fn from_name(name: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl LatencySummary {
    pub fn get(&self, stat: Stat) -> Duration {
        match stat {
            Stat::Min => self.min,
            Stat::Mean => self.mean,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P95 => self.p95,
            Stat::P99 => self.p99,
            Stat::Max => self.max,
        }
    }
}

/// Durations as milliseconds with microsecond precision in JSON.
pub mod ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_micros() as f64) / 1000.0)
    }
    /// A negative, infinite or NaN figure (not one kpatrol writes) reads as zero.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = <f64 as serde::Deserialize>::deserialize(d)?;
        let us = if ms.is_finite() && ms > 0.0 {
            (ms * 1000.0).round() as u64
        } else {
            0
        };
        Ok(Duration::from_micros(us))
    }
}

impl Stats {
    /// Empty statistics able to hold latencies up to `highest`.
    ///
    /// The histogram starts small and grows to the largest latency recorded (a few times
    /// over a target's life, never per request): sized for `highest` at once it would cost
    /// about 128 KiB per shard for a 10 s window, most of it for latencies that never come.
    pub fn new(highest: Duration) -> Self {
        let high = (highest.as_micros() as u64).max(1_000);
        Stats {
            hist: histogram(Histogram::new(3)),
            highest: high,
            codes: BTreeMap::new(),
            errors: [0; ErrorKind::COUNT],
            sent: 0,
            unsent: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// What is left where statistics were taken away whole (see `Live::finish`): empty,
    /// with the smallest histogram there is.
    pub(super) fn taken(&self) -> Self {
        Stats {
            hist: histogram(Histogram::new_with_bounds(1, 2, 0)),
            codes: BTreeMap::new(),
            errors: [0; ErrorKind::COUNT],
            sent: 0,
            unsent: 0,
            elapsed: Duration::ZERO,
            highest: self.highest,
        }
    }

    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.sent += 1;
        match outcome {
            Outcome::Answered(code) => {
                *self.codes.entry(code).or_default() += 1;
                let us = (latency.as_micros() as u64).clamp(1, self.highest);
                let size = self.hist.distinct_values();
                if self.hist.record(us).is_err() {
                    self.hist.saturating_record(us); // growing failed: keep the count
                }
                if self.hist.distinct_values() != size {
                    self.compact();
                }
            }
            Outcome::Failed(kind) => {
                if let Some(n) = self.errors.get_mut(kind as usize) {
                    *n += 1;
                }
            }
        }
    }

    /// After the histogram grew: a copy allocated to its new size. Growing in place
    /// doubles the allocation as vectors do, up to twice what the counts need, in every
    /// target's histogram; this happens a few times in a round, never per request.
    fn compact(&mut self) {
        if let Ok(mut h) = Histogram::new_with_bounds(1, self.hist.high().max(2), 3) {
            h.auto(true);
            if h.add(&self.hist).is_ok() {
                self.hist = h;
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        // Bounds may differ (merging agents); values beyond ours saturate.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (c, n) in &other.codes {
            *self.codes.entry(*c).or_default() += n;
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.sent += other.sent;
        self.unsent += other.unsent;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.highest = self.highest.max(other.highest);
    }

    pub fn answered(&self) -> u64 {
        self.codes.values().sum()
    }

    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors.get(kind as usize).copied().unwrap_or(0)
    }

    /// Error kinds with a non-zero count.
    pub fn errors(&self) -> BTreeMap<ErrorKind, u64> {
        ErrorKind::ALL
            .iter()
            .filter(|k| self.error(**k) > 0)
            .map(|k| (*k, self.error(*k)))
            .collect()
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = Duration::from_micros;
        LatencySummary {
            min: us(h.min()),
            mean: Duration::from_nanos((h.mean() * 1000.0) as u64),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p95: us(h.value_at_quantile(0.95)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new(Duration::from_secs(1));
        let mut b = Stats::new(Duration::from_secs(10));
        a.record(Outcome::Answered(200), Duration::from_millis(1));
        b.record(Outcome::Answered(500), Duration::from_millis(5));
        b.record(Outcome::Failed(ErrorKind::Reset), Duration::from_millis(5));
        a.merge(&b);
        assert_eq!((a.sent, a.answered(), a.failed()), (3, 2, 1));
        assert_eq!(a.error(ErrorKind::Reset), 1);
        let s = a.summary();
        assert_eq!(s.min, Duration::from_millis(1));
        assert!(s.max >= Duration::from_millis(5) && s.max < Duration::from_micros(5010));
    }

    #[test]
    fn the_histogram_grows_with_what_is_recorded_up_to_its_bound() {
        let mut s = Stats::new(Duration::from_secs(30));
        s.record(Outcome::Answered(200), Duration::from_micros(800));
        let small = s.hist.distinct_values();
        s.record(Outcome::Answered(200), Duration::from_secs(20));
        s.record(Outcome::Answered(200), Duration::from_secs(3600));
        assert!(s.hist.distinct_values() > small);
        let sum = s.summary();
        assert!(sum.min >= Duration::from_micros(799) && sum.min <= Duration::from_micros(801));
        // beyond the bound: recorded at the bound
        assert!(
            sum.max >= Duration::from_secs(30) && sum.max < Duration::from_secs(31),
            "{sum:?}"
        );
    }
}
