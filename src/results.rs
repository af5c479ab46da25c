//! What a round measured, before judging: the typed data every stage after the probe
//! shares (the judge, the report, telemetry, `kpatrol run`).
//!
//! A module of its own, not part of `probe` (which does the I/O that fills it) nor of
//! `report` (which reads it with the verdict): the judge needs it too, and a pure stage
//! should not depend on an I/O one. Results are keyed by [`TargetId`], never by their
//! position next to the plan's targets.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::pressure::{ErrorKind, Stats};

/// A target's identity in a round: its name, unique within a task (task reading refuses a
/// name used twice, and `round`, which names the whole round in reports).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(String);

impl TargetId {
    pub fn new(name: impl Into<String>) -> Self {
        TargetId(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TargetId {
    fn from(s: &str) -> Self {
        TargetId(s.into())
    }
}

impl From<String> for TargetId {
    fn from(s: String) -> Self {
        TargetId(s)
    }
}

impl PartialEq<str> for TargetId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TargetId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// What a round produced, before judging: one result per target, in task order.
#[derive(Debug)]
pub struct RoundResult {
    pub targets: Vec<TargetResult>,
    pub started_at: SystemTime,
    pub elapsed: Duration,
    /// The round was stopped early (Ctrl-C, SIGTERM).
    pub stopped: bool,
}

impl RoundResult {
    /// The result of one target.
    pub fn target(&self, id: &TargetId) -> Option<&TargetResult> {
        self.targets.iter().find(|t| t.id == *id)
    }
}

/// What one target's pressure measured.
#[derive(Debug)]
pub struct TargetResult {
    pub id: TargetId,
    /// Slots planned at a fixed rate; `None` at the maximum rate.
    pub planned: Option<u64>,
    pub stats: Stats,
    /// One example message per error kind.
    pub error_samples: Vec<(ErrorKind, String)>,
}
