//! The report of a mesh round, as `kpatrol run` prints it (a table with the heatmap, or
//! JSON) and as the HTML page and telemetry read it: the matrix, its verdict and findings,
//! what was skipped and which pairs the round covered.

use serde::Serialize;

use crate::judge::matrix::{CellExpect, Matrix, MatrixVerdict};
use crate::judge::{Check, Outcome};

/// A mesh round, judged.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshReport {
    pub task: String,
    pub kind: String,
    pub mode: &'static str,
    pub verdict: Outcome,
    pub agents: u32,
    /// `loopback` or `netns` (`kpatrol run`), `cluster` (the launcher).
    pub network: &'static str,
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
            "netns" => "in network namespaces",
            "cluster" => "in the cluster",
            _ => "on loopback",
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
