//! The report of a mesh round, as `kpatrol run` prints it (a table with the heatmap, or
//! JSON) and as the HTML page and telemetry read it: the matrix, its verdict and findings,
//! what was skipped and which pairs the round covered.

use serde::Serialize;

use crate::judge::matrix::{CellExpect, Matrix, MatrixVerdict, judge_matrix};
use crate::judge::{Check, Outcome};

/// Where a mesh round ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// `kpatrol run`: agents on loopback addresses.
    Loopback,
    /// `kpatrol run --netns`: each agent a node in a network namespace.
    Netns,
    /// The launcher in a cluster.
    Cluster,
}

/// What a round's place knows beside its matrix, for [`MeshReport::judged`].
pub struct Round {
    pub agents: u32,
    pub network: Place,
    pub skipped: Vec<String>,
    pub coverage: Option<String>,
    /// Stopped (SIGTERM) before its end: the round fails whatever its cells.
    pub stopped: bool,
    pub started_at: std::time::SystemTime,
    pub duration_seconds: f64,
}

/// A mesh round, judged.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshReport {
    pub task: String,
    pub kind: String,
    pub mode: &'static str,
    pub verdict: Outcome,
    pub agents: u32,
    pub network: Place,
    pub cells: u64,
    pub failed_cells: u64,
    /// Failing cells past the listed checks.
    pub unlisted_cells: u64,
    /// The task's paths (or cells) this run could not take, with why.
    pub skipped: Vec<String>,
    /// Which pairs this round covered, when a neighbour limit bounds the mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<String>,
    pub findings: Vec<String>,
    pub checks: Vec<Check>,
    pub stopped: bool,
    /// How long the round took, network setup included.
    pub duration_seconds: f64,
    #[serde(skip)]
    pub started_at: std::time::SystemTime,
    #[serde(skip)]
    pub matrix: Matrix,
    #[serde(skip)]
    pub verdict_detail: Option<MatrixVerdict>,
    #[serde(skip)]
    pub expect: CellExpect,
}

impl MeshReport {
    /// Judges `matrix` by `plan`'s expectations: the report of one round wherever it ran.
    pub fn judged(plan: &crate::plan::Plan, matrix: Matrix, r: Round) -> MeshReport {
        let expect = CellExpect::of(&plan.expect);
        let v = judge_matrix(&expect, &matrix);
        MeshReport {
            task: plan.name.clone(),
            kind: plan.kind.clone(),
            mode: "reach",
            verdict: if r.stopped { Outcome::Fail } else { v.outcome },
            agents: r.agents,
            network: r.network,
            cells: v.cells,
            failed_cells: v.failed_cells,
            unlisted_cells: v.unlisted_cells,
            skipped: r.skipped,
            coverage: r.coverage,
            findings: v.findings.iter().map(crate::report::heatmap::finding_text).collect(),
            checks: v.checks.clone(),
            stopped: r.stopped,
            duration_seconds: r.duration_seconds,
            started_at: r.started_at,
            matrix,
            expect,
            verdict_detail: Some(v),
        }
    }

    /// The report as a table: the heatmap, what was skipped, the verdict.
    pub fn table(&self) -> String {
        let mut paths: Vec<&str> = Vec::new();
        for p in &self.matrix.paths {
            if !paths.contains(&p.path.as_str()) {
                paths.push(&p.path);
            }
        }
        let mut families: Vec<&str> = Vec::new();
        for p in &self.matrix.paths {
            if !families.contains(&p.family.as_str()) {
                families.push(&p.family);
            }
        }
        let place = match self.network {
            Place::Netns => "in network namespaces",
            Place::Cluster => "in the cluster",
            Place::Loopback => "on loopback",
        };
        let mut out = format!(
            "{} {} {place}: {} agents, paths {} ({})\n",
            self.kind,
            self.task,
            self.agents,
            paths.join(", "),
            families.join(", ")
        );
        for s in &self.skipped {
            out.push_str(&format!("skipped {s}\n"));
        }
        if let Some(c) = &self.coverage {
            out.push_str(&format!("peers: {c}\n"));
        }
        out.push('\n');
        if let Some(v) = &self.verdict_detail {
            out.push_str(&crate::report::heatmap::heatmap(&self.matrix, &self.expect, v));
        }
        if self.stopped {
            out.push_str("stopped before the round's end\n");
        }
        out.push_str(if self.verdict == Outcome::Pass {
            "\nverdict: PASS\n"
        } else {
            "\nverdict: FAIL\n"
        });
        out
    }
}

/// A cluster round's matrix as its launcher keeps it (ConfigMap `<round's Job>-matrix`, owned
/// by that Job, key [`MatrixRecord::KEY`]), for `kpatrol report TASK --html FILE`: the
/// matrix and the expectations it was judged by, so the reader judges it again. Compact: a
/// cell is `[source, target, path, sent, ok, mean µs, p99 µs]`.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRecord {
    pub task: String,
    pub nodes: Vec<String>,
    pub paths: Vec<crate::judge::matrix::PathName>,
    pub reported: Vec<bool>,
    pub cells: Vec<[u32; 7]>,
    pub success_rate: Option<f64>,
    pub mean_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub whole_ms: bool,
}

impl MatrixRecord {
    /// The ConfigMap key.
    pub const KEY: &'static str = "matrix.json";
    /// The largest record kept (a ConfigMap holds at most 1 MiB): about 30,000 cells.
    pub const MAX_BYTES: usize = 900 << 10;

    pub fn of(task: &str, m: &Matrix, e: &CellExpect) -> MatrixRecord {
        let us = |d: Option<std::time::Duration>| d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        MatrixRecord {
            task: task.to_string(),
            nodes: m.nodes.clone(),
            paths: m.paths.clone(),
            reported: m.reported.clone(),
            cells: m
                .cells
                .iter()
                .map(|c| [c.source, c.target, u32::from(c.path), c.sent, c.ok, c.mean_us, c.p99_us])
                .collect(),
            success_rate: e.success_rate,
            mean_us: us(e.mean),
            p99_us: us(e.p99),
            whole_ms: e.whole_ms,
        }
    }

    /// The record as JSON, when it is within [`MatrixRecord::MAX_BYTES`].
    pub fn to_json(&self) -> Option<String> {
        serde_json::to_string(self).ok().filter(|t| t.len() <= Self::MAX_BYTES)
    }

    pub fn matrix(&self) -> Matrix {
        Matrix {
            nodes: self.nodes.clone(),
            paths: self.paths.clone(),
            reported: self.reported.clone(),
            cells: self
                .cells
                .iter()
                .map(
                    |[source, target, path, sent, ok, mean_us, p99_us]| crate::judge::matrix::Cell {
                        source: *source,
                        target: *target,
                        path: u16::try_from(*path).unwrap_or(u16::MAX),
                        sent: *sent,
                        ok: *ok,
                        mean_us: *mean_us,
                        p99_us: *p99_us,
                    },
                )
                .collect(),
        }
    }

    pub fn expect(&self) -> CellExpect {
        CellExpect {
            success_rate: self.success_rate,
            mean: self.mean_us.map(std::time::Duration::from_micros),
            p99: self.p99_us.map(std::time::Duration::from_micros),
            whole_ms: self.whole_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::matrix::{Cell, PathName};

    #[test]
    fn a_matrix_record_reads_back_as_it_was_judged_and_is_bounded() {
        let m = Matrix {
            nodes: vec!["a".into(), "b".into()],
            paths: vec![PathName {
                path: "pod".into(),
                family: "ipv4".into(),
            }],
            reported: vec![true, false],
            cells: vec![Cell {
                source: 0,
                target: 1,
                path: 0,
                sent: 30,
                ok: 29,
                mean_us: 900,
                p99_us: 4_000,
            }],
        };
        let e = CellExpect {
            success_rate: Some(1.0),
            mean: Some(std::time::Duration::from_millis(5)),
            p99: None,
            whole_ms: true,
        };
        let r = MatrixRecord::of("t", &m, &e);
        let back: MatrixRecord = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.matrix().cells, m.cells);
        assert_eq!(back.expect(), e);
        let big = MatrixRecord {
            cells: vec![[1_000_000; 7]; 100_000],
            ..r
        };
        assert!(big.to_json().is_none(), "past a ConfigMap's size, nothing is kept");
    }
}
