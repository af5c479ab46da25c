//! The disk mode: native `DiskCheck`. "Are the etcd nodes' disks still fast enough?" For
//! each target folder it measures, one after another and one I/O at a time: etcd-style
//! small writes each followed by fdatasync (`fdatasync`), sequential durable writes and
//! reads of 1 MiB (`seqWrite`, `seqRead`: throughput), random 4 KiB reads and durable
//! writes (`randRead`, `randWrite`: IOPS). Each measure is a target of its own in results
//! and reports (`NAME fdatasync`, ...). Files are bounded by the target's `size`, checked
//! against the free space before anything is written, and unlinked as soon as they are
//! created, so nothing is left even when the probe is killed.
//!
//! In a pod the folder is where the target's volume is mounted: an emptyDir (the
//! default) or a PVC keep Pod Security "restricted"; a hostPath needs "privileged", which
//! render says. No API access.

pub mod attempt;
pub mod plan;
pub(crate) mod read;

use std::sync::Arc;

pub use plan::*;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Expect, Pressure};
use crate::probe::{Mounts, ProbeError, SetupError};
use crate::results::TargetId;

impl RoundMode for DiskPlan {
    const NAME: &'static str = "disk";
    const ABOUT: &'static str = "Disk checks: fdatasync latency, throughput and IOPS on a folder (DiskCheck).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "DiskCheck",
        codes: CodeKind::Disk,
        // each measure counts its own code (written, or read) as success
        default_codes: CodeRange {
            from: WRITTEN,
            to: READ,
        },
        targets: read::disk_targets,
        expect: read::disk_expect,
        one_at_a_time: true,
    });

    fn targets(&self) -> Vec<(&str, &Expect)> {
        self.targets
            .iter()
            .flat_map(|t| t.measures.iter().map(|m| (m.id.as_str(), &m.expect)))
            .collect()
    }

    async fn prepare(&self, _: &Pressure, _: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        let mut out = Vec::new();
        for t in &self.targets {
            let target = t.clone();
            let files = tokio::task::spawn_blocking(move || attempt::open(&target))
                .await
                .map_err(|e| SetupError::Invalid(format!("preparing the files: {e}")).of(&t.name))?
                .map_err(|e| e.of(&t.name))?;
            let files = Arc::new(files);
            let attempts = t
                .measures
                .iter()
                .map(|m| attempt::DiskAttempt::new(m.measure, files.clone()))
                .collect();
            for (m, phase) in t.measures.iter().zip(attempt::Phase::chain(attempts)) {
                out.push(Prepared {
                    id: TargetId::new(m.id.as_str()),
                    attempt: Arc::new(phase),
                    planned_as: None,
                });
            }
        }
        Ok(out)
    }

    fn mounts(&self, needs: &mut Needs<'_>) {
        for (i, t) in self.targets.iter().enumerate() {
            if let DiskVolume::HostPath(h) = &t.volume {
                needs.warn(
                    &format!("spec.targets[{i}].volume.hostPath"),
                    format!(
                        "a hostPath volume ({h}) needs a namespace whose Pod Security level is privileged \
                         (label pod-security.kubernetes.io/enforce: privileged): baseline and restricted refuse it; \
                         the folder must also be writable by the pod's user (uid 65532)"
                    ),
                );
            }
            needs.volumes.push((t.path.clone(), t.volume.clone()));
        }
    }
}
