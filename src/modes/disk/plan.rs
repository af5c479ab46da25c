//! What a disk round does: its targets (a folder, a file size, the volume a pod mounts
//! there) and, per target, the measures it takes one after another, each a target of its
//! own in results and reports (`NAME fdatasync`, `NAME seqWrite`, ...).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diag::Pos;
use crate::plan::{Expect, LatencyLimits};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiskPlan {
    pub targets: Vec<DiskTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiskTarget {
    pub name: String,
    /// The folder the files go in (in a pod: where the volume is mounted).
    pub path: String,
    /// The data file's size, bytes (the WAL-like file of `fdatasync` takes up to
    /// [`wal_size`] more).
    pub size: u64,
    pub volume: DiskVolume,
    /// What it measures, in this order, each with its expectations.
    pub measures: Vec<MeasurePlan>,
    /// Where `path` and `size` are in the task, for problems found on the machine.
    #[serde(skip)]
    pub at: Located,
}

/// Where a target's fields are, for messages about the folder found when the round starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Located {
    pub path: (Pos, String),
    pub size: (Pos, String),
}

/// The volume a pod mounts at the target's path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DiskVolume {
    /// The node's disk under the kubelet's folder (the default).
    EmptyDir,
    /// A folder of the node: needs a namespace whose Pod Security level is `privileged`.
    HostPath(String),
    /// A PersistentVolumeClaim of the task's namespace, by name.
    Pvc(String),
}

/// One measure of a target, as planned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeasurePlan {
    pub measure: DiskMeasure,
    /// Its name in results and reports: `TARGET MEASURE`.
    pub id: String,
    pub expect: Expect,
}

/// What a disk round measures, one after another, one I/O at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum DiskMeasure {
    /// etcd's WAL: `FDATASYNC_BYTES` appended, then fdatasync, each attempt.
    #[serde(rename = "fdatasync")]
    Fdatasync,
    /// `SEQ_BYTES` written at the next offset, then fdatasync.
    #[serde(rename = "seqWrite")]
    SeqWrite,
    /// `SEQ_BYTES` read at the next offset, past the page cache.
    #[serde(rename = "seqRead")]
    SeqRead,
    /// `RAND_BYTES` read at a random aligned offset, past the page cache.
    #[serde(rename = "randRead")]
    RandRead,
    /// `RAND_BYTES` written at a random aligned offset, then fdatasync.
    #[serde(rename = "randWrite")]
    RandWrite,
}

impl DiskMeasure {
    pub const ALL: [DiskMeasure; 5] = [
        DiskMeasure::Fdatasync,
        DiskMeasure::SeqWrite,
        DiskMeasure::SeqRead,
        DiskMeasure::RandRead,
        DiskMeasure::RandWrite,
    ];

    /// Its name in tasks and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskMeasure::Fdatasync => "fdatasync",
            DiskMeasure::SeqWrite => "seqWrite",
            DiskMeasure::SeqRead => "seqRead",
            DiskMeasure::RandRead => "randRead",
            DiskMeasure::RandWrite => "randWrite",
        }
    }

    pub fn from_name(name: &str) -> Option<DiskMeasure> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Bytes one attempt moves.
    pub fn bytes(self) -> u64 {
        match self {
            DiskMeasure::Fdatasync => FDATASYNC_BYTES,
            DiskMeasure::SeqWrite | DiskMeasure::SeqRead => SEQ_BYTES,
            DiskMeasure::RandRead | DiskMeasure::RandWrite => RAND_BYTES,
        }
    }

    /// Whether its floor is a throughput (`min: 100MiB/s`) rather than IOPS (`minIops`).
    pub fn is_sequential(self) -> bool {
        matches!(self, DiskMeasure::SeqWrite | DiskMeasure::SeqRead)
    }

    /// Whether it reads the data file (which is then written in full before the round).
    pub fn reads(self) -> bool {
        matches!(self, DiskMeasure::SeqRead | DiskMeasure::RandRead)
    }

    /// Its answer code.
    pub fn code(self) -> u16 {
        match self {
            DiskMeasure::SeqRead | DiskMeasure::RandRead => READ,
            _ => WRITTEN,
        }
    }
}

/// The expectations of one measure, as written (unset fields fall back to the enclosing
/// level): latency limits and a floor on the rate (bytes per second for the sequential
/// measures, I/O per second for the others).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeasureExpect {
    pub latency: LatencyLimits,
    pub min_per_second: Option<f64>,
}

/// A DiskCheck's own expectations: one block per measure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskExpect {
    pub measures: BTreeMap<DiskMeasure, MeasureExpect>,
}

impl DiskExpect {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: &DiskExpect) -> DiskExpect {
        let none = MeasureExpect::default();
        let measures = DiskMeasure::ALL
            .into_iter()
            .filter_map(|m| {
                let (a, b) = (self.measures.get(&m), base.measures.get(&m));
                if a.is_none() && b.is_none() {
                    return None;
                }
                let (a, b) = (a.unwrap_or(&none), b.unwrap_or(&none));
                Some((
                    m,
                    MeasureExpect {
                        latency: a.latency.over(&b.latency),
                        min_per_second: a.min_per_second.or(b.min_per_second),
                    },
                ))
            })
            .collect();
        DiskExpect { measures }
    }
}

/// The answer code of an attempt that wrote (and synced, where the measure syncs).
pub const WRITTEN: u16 = 0;
/// The answer code of an attempt that read.
pub const READ: u16 = 1;

/// An answer code's name in reports and expectations.
pub fn code_name(code: u16) -> String {
    match code {
        WRITTEN => "written".into(),
        READ => "read".into(),
        c => format!("code{c}"),
    }
}

/// etcd's guidance measures fdatasync after writes of 2,300 bytes (its WAL entries' size).
pub const FDATASYNC_BYTES: u64 = 2300;
pub const SEQ_BYTES: u64 = 1 << 20;
pub const RAND_BYTES: u64 = 4096;
/// The data file's size when a target gives none.
pub const DEFAULT_SIZE: u64 = 64 << 20;
/// The smallest data file: one sequential block.
pub const MIN_SIZE: u64 = SEQ_BYTES;
/// The largest data file.
pub const MAX_SIZE: u64 = 64 << 30;
/// The fdatasync file grows up to this, then is written again from its start.
pub const WAL_MAX: u64 = 64 << 20;

/// How large the fdatasync file of a target of `size` grows.
pub fn wal_size(size: u64) -> u64 {
    size.min(WAL_MAX)
}

/// Bytes a target needs free before anything is written.
pub fn space_needed(t: &DiskTarget) -> u64 {
    let data = if t.measures.iter().any(|m| m.measure != DiskMeasure::Fdatasync) {
        t.size
    } else {
        0
    };
    let wal = if t.measures.iter().any(|m| m.measure == DiskMeasure::Fdatasync) {
        wal_size(t.size)
    } else {
        0
    };
    data + wal
}
