//! The mesh's judge: a round's matrix of cells (source node → target node over one path and
//! family: pod IP, ClusterIP, NodePort… over IPv4 or IPv6) against the task's expectations
//! per cell (kdoctor's NetReach rules: success rate and mean delay, in whole milliseconds;
//! natively also the p99), and the diagnosis of what the failing cells point at: one node
//! (its row, its column, or both failing), one path on one node (a NodePort rule gone), one
//! path everywhere, or single pairs; agents that never reported are named, never dropped.
//! Pure: no I/O, no clock. Cells are indices into the matrix's node and path lists, so a
//! round of 1,000 agents × 1,000 targets × 3 paths stays small.

use std::time::Duration;

use super::{Check, Measure, Outcome, Subject, pct};
use crate::duration::format_duration;

/// What a round's agents measured, cell by cell.
#[derive(Clone, Debug, Default)]
pub struct Matrix {
    /// Every node expected to run an agent, by index.
    pub nodes: Vec<String>,
    /// Every path of the round, by index.
    pub paths: Vec<PathName>,
    /// Whether each node's agent reported (its row is known), by node index.
    pub reported: Vec<bool>,
    pub cells: Vec<Cell>,
}

/// A path between agents and the address family it took.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathName {
    /// `pod`, `clusterIP`, `nodePort`, `loadBalancer`, `ingress`, `multus`.
    pub path: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// One cell: what the agent on `source` measured towards `target` over `path`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    pub source: u32,
    pub target: u32,
    pub path: u16,
    pub sent: u32,
    /// Successful requests.
    pub ok: u32,
    /// Mean and p99 latency of answered requests, microseconds.
    pub mean_us: u32,
    pub p99_us: u32,
}

/// What every cell must show.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CellExpect {
    pub success_rate: Option<f64>,
    pub mean: Option<Duration>,
    pub p99: Option<Duration>,
    /// Compare the mean in whole milliseconds, truncated (kdoctor's rule).
    pub whole_ms: bool,
}

impl CellExpect {
    /// A round's expectations as each cell must meet them.
    pub fn of(e: &crate::plan::Expect) -> CellExpect {
        CellExpect {
            success_rate: e.success_rate,
            mean: e.latency.mean,
            p99: e.latency.p99,
            whole_ms: e.whole_ms,
        }
    }
}

/// What the failing cells point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Every cell of the round failed: nothing points at one node or path.
    Everything { cells: u64 },
    /// Every cell from this node (`from`: its row), to it (`to`: its column), or both,
    /// over every path, failed, while others passed: the node is the likely cause.
    Node {
        node: String,
        from: bool,
        to: bool,
        failed: u64,
    },
    /// Every cell to (or from) this node over one path failed while its other paths passed:
    /// that path on that node (a NodePort rule, an interface).
    NodePath {
        node: String,
        path: String,
        family: String,
        from: bool,
        to: bool,
        failed: u64,
    },
    /// One path failed for every node, the others passed.
    Path { path: String, family: String, failed: u64 },
    /// Failing cells none of the findings above explains: single pairs.
    Pairs { failed: u64 },
    /// A node whose agent never reported: its row is unknown (its column is judged).
    Silent { node: String },
}

/// The verdict of a matrix: pass when every cell passed and every agent reported.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixVerdict {
    pub outcome: Outcome,
    pub cells: u64,
    pub failed_cells: u64,
    /// The failing cells' checks (at most [`MAX_CELL_CHECKS`] cells), and one per silent
    /// agent.
    pub checks: Vec<Check>,
    /// Failing cells past [`MAX_CELL_CHECKS`], counted, not listed.
    pub unlisted_cells: u64,
    pub findings: Vec<Finding>,
}

/// The failing cells whose checks a verdict lists; the findings and counts cover the rest.
pub const MAX_CELL_CHECKS: usize = 10_000;

/// A node's row or column over one path needs this many cells before it points at the node
/// (with fewer, one failing pair would name both its ends).
const MIN_GROUP: u32 = 2;

/// Whether one cell met every expectation.
pub fn cell_passes(e: &CellExpect, c: &Cell) -> bool {
    cell_failures(e, c).is_empty()
}

/// Why one cell failed: each check of it that did not pass.
fn cell_failures(e: &CellExpect, c: &Cell) -> Vec<(Measure, String, String)> {
    let mut out = Vec::new();
    if c.sent == 0 {
        out.push((
            Measure::SuccessRate,
            "nothing sent".into(),
            rate_text(e.success_rate.unwrap_or(1.0)),
        ));
        return out;
    }
    if let Some(min) = e.success_rate {
        let rate = c.ok as f64 / c.sent as f64;
        if rate < min {
            out.push((
                Measure::SuccessRate,
                format!("{} ({}/{})", pct(rate), c.ok, c.sent),
                rate_text(min),
            ));
        }
    }
    let answered = c.ok > 0;
    if let Some(limit) = e.mean {
        let mut mean = Duration::from_micros(c.mean_us as u64);
        if e.whole_ms {
            mean = Duration::from_millis(mean.as_millis() as u64);
        }
        if !answered || mean > limit {
            let observed = if answered {
                format_duration(mean)
            } else {
                "no answers".into()
            };
            out.push((
                Measure::Latency(crate::pressure::Stat::Mean),
                observed,
                format!("≤ {}", format_duration(limit)),
            ));
        }
    }
    if let Some(limit) = e.p99 {
        let p99 = Duration::from_micros(c.p99_us as u64);
        if !answered || p99 > limit {
            let observed = if answered {
                format_duration(p99)
            } else {
                "no answers".into()
            };
            out.push((
                Measure::Latency(crate::pressure::Stat::P99),
                observed,
                format!("≤ {}", format_duration(limit)),
            ));
        }
    }
    out
}

fn rate_text(min: f64) -> String {
    format!("≥ {}", pct(min))
}

/// Cells and failed cells of one group (a node's row or column over one path).
#[derive(Clone, Copy, Default)]
struct Tally {
    cells: u32,
    failed: u32,
}

impl Tally {
    fn add(&mut self, failed: bool) {
        self.cells += 1;
        self.failed += failed as u32;
    }

    fn all_failed(&self) -> bool {
        self.cells >= MIN_GROUP && self.failed == self.cells
    }
}

/// Judges every cell of `m` against `e` and says what the failing ones point at.
pub fn judge_matrix(e: &CellExpect, m: &Matrix) -> MatrixVerdict {
    let (nodes, paths) = (m.nodes.len(), m.paths.len().max(1));
    let name = |i: u32| m.nodes.get(i as usize).map(String::as_str).unwrap_or("?");
    let path = |i: u16| m.paths.get(i as usize);
    // per node, per path: its row (as source) and its column (as target)
    let mut rows = vec![Tally::default(); nodes * paths];
    let mut cols = vec![Tally::default(); nodes * paths];
    let mut by_path = vec![Tally::default(); paths];
    let mut failing: Vec<u32> = Vec::new();
    let mut checks = Vec::new();
    let mut unlisted = 0u64;
    for (i, c) in m.cells.iter().enumerate() {
        let why = cell_failures(e, c);
        let failed = !why.is_empty();
        let p = c.path as usize;
        if let Some(t) = rows.get_mut(c.source as usize * paths + p) {
            t.add(failed);
        }
        if let Some(t) = cols.get_mut(c.target as usize * paths + p) {
            t.add(failed);
        }
        if let Some(t) = by_path.get_mut(p) {
            t.add(failed);
        }
        if !failed {
            continue;
        }
        failing.push(i as u32);
        if failing.len() > MAX_CELL_CHECKS {
            unlisted += 1;
            continue;
        }
        let (pname, family) = path(c.path)
            .map(|p| (p.path.clone(), p.family.clone()))
            .unwrap_or_default();
        for (measure, observed, threshold) in why {
            checks.push(Check {
                subject: Subject::Cell {
                    source: name(c.source).into(),
                    target: name(c.target).into(),
                    path: pname.clone(),
                    family: family.clone(),
                },
                measure,
                observed,
                threshold,
                pass: false,
            });
        }
    }
    let mut findings = Vec::new();
    let total = m.cells.len() as u64;
    if !failing.is_empty() && failing.len() as u64 == total {
        findings.push(Finding::Everything { cells: total });
    } else if !failing.is_empty() {
        // what explains a failing cell: its source's row, its target's column (over its
        // path, or every path), or its path everywhere
        let mut row_bad = vec![false; nodes * paths];
        let mut col_bad = vec![false; nodes * paths];
        for n in 0..nodes {
            let group = |t: &[Tally], p: usize| t.get(n * paths + p).copied().unwrap_or_default();
            let from: Vec<bool> = (0..paths).map(|p| group(&rows, p).all_failed()).collect();
            let to: Vec<bool> = (0..paths).map(|p| group(&cols, p).all_failed()).collect();
            let any_cells = |t: &[Tally]| (0..paths).any(|p| group(t, p).cells > 0);
            let every = |bad: &[bool], t: &[Tally]| {
                any_cells(t) && (0..paths).all(|p| bad.get(p).copied().unwrap_or(false) || group(t, p).cells == 0)
            };
            let (all_from, all_to) = (every(&from, &rows), every(&to, &cols));
            for p in 0..paths {
                let i = n * paths + p;
                if let Some(b) = row_bad.get_mut(i) {
                    *b = from.get(p).copied().unwrap_or(false);
                }
                if let Some(b) = col_bad.get_mut(i) {
                    *b = to.get(p).copied().unwrap_or(false);
                }
            }
            let node = name(n as u32).to_string();
            if all_from || all_to {
                // its failing cells, each once (its cell to itself is in its row and column)
                let me = n as u32;
                let failed = failing
                    .iter()
                    .filter_map(|i| m.cells.get(*i as usize))
                    .filter(|c| (all_from && c.source == me) || (all_to && c.target == me))
                    .count() as u64;
                findings.push(Finding::Node {
                    node,
                    from: all_from,
                    to: all_to,
                    failed,
                });
                continue;
            }
            for p in 0..paths {
                let (f, t) = (
                    from.get(p).copied().unwrap_or(false),
                    to.get(p).copied().unwrap_or(false),
                );
                // a path failing for every node is the path's finding, not each node's
                if (f || t) && by_path.get(p).is_none_or(|bp| bp.failed != bp.cells) {
                    let pn = path(p as u16).cloned().unwrap_or(PathName {
                        path: "?".into(),
                        family: "?".into(),
                    });
                    findings.push(Finding::NodePath {
                        node: node.clone(),
                        path: pn.path,
                        family: pn.family,
                        from: f,
                        to: t,
                        failed: (if f { group(&rows, p).failed } else { 0 }) as u64
                            + (if t { group(&cols, p).failed } else { 0 }) as u64,
                    });
                }
            }
        }
        let mut path_bad = vec![false; paths];
        for (p, t) in by_path.iter().enumerate() {
            if t.cells >= MIN_GROUP && t.failed == t.cells {
                if let Some(b) = path_bad.get_mut(p) {
                    *b = true;
                }
                let pn = path(p as u16).cloned().unwrap_or(PathName {
                    path: "?".into(),
                    family: "?".into(),
                });
                findings.push(Finding::Path {
                    path: pn.path,
                    family: pn.family,
                    failed: t.failed as u64,
                });
            }
        }
        let pairs = failing
            .iter()
            .filter_map(|i| m.cells.get(*i as usize))
            .filter(|c| {
                let p = c.path as usize;
                !(row_bad.get(c.source as usize * paths + p).copied().unwrap_or(false)
                    || col_bad.get(c.target as usize * paths + p).copied().unwrap_or(false)
                    || path_bad.get(p).copied().unwrap_or(false))
            })
            .count() as u64;
        if pairs > 0 {
            findings.push(Finding::Pairs { failed: pairs });
        }
    }
    for (n, reported) in m.reported.iter().enumerate() {
        if !reported {
            let node = name(n as u32).to_string();
            findings.push(Finding::Silent { node: node.clone() });
            checks.push(Check {
                subject: Subject::Agent(node),
                measure: Measure::Verdict,
                observed: "no report".into(),
                threshold: "a report".into(),
                pass: false,
            });
        }
    }
    let silent = m.reported.iter().any(|r| !r);
    MatrixVerdict {
        outcome: Outcome::of(failing.is_empty() && !silent && total > 0),
        cells: total,
        failed_cells: failing.len() as u64,
        checks,
        unlisted_cells: unlisted,
        findings,
    }
}

/// A matrix for the tests of the judge's readers (heatmap, HTML).
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// `n` nodes over one path (pod ipv4), every pair pressed 10 times; `bad` gives a
    /// pair's successes when not all 10 succeeded.
    pub fn square(n: u32, bad: impl Fn(u32, u32) -> Option<u32>) -> Matrix {
        let mut cells = Vec::new();
        for s in 0..n {
            for t in 0..n {
                cells.push(Cell {
                    source: s,
                    target: t,
                    path: 0,
                    sent: 10,
                    ok: bad(s, t).unwrap_or(10),
                    mean_us: 500,
                    p99_us: 900,
                });
            }
        }
        Matrix {
            nodes: (0..n).map(|i| format!("n{i}")).collect(),
            paths: vec![PathName {
                path: "pod".into(),
                family: "ipv4".into(),
            }],
            reported: vec![true; n as usize],
            cells,
        }
    }

    /// Every request must succeed.
    pub const E: CellExpect = CellExpect {
        success_rate: Some(1.0),
        mean: None,
        p99: None,
        whole_ms: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATHS: [(&str, &str); 3] = [("pod", "ipv4"), ("clusterIP", "ipv4"), ("nodePort", "ipv4")];

    /// A full mesh of `n` nodes over the three paths, every cell 100 of 100 in 1 ms; `bad`
    /// decides the cells it returns `Some(ok)` for.
    fn mesh(n: usize, bad: impl Fn(u32, u32, u16) -> Option<u32>) -> Matrix {
        let mut cells = Vec::new();
        for s in 0..n as u32 {
            for t in 0..n as u32 {
                for p in 0..PATHS.len() as u16 {
                    cells.push(Cell {
                        source: s,
                        target: t,
                        path: p,
                        sent: 100,
                        ok: bad(s, t, p).unwrap_or(100),
                        mean_us: 1_000,
                        p99_us: 2_000,
                    });
                }
            }
        }
        Matrix {
            nodes: (0..n).map(|i| format!("node-{i}")).collect(),
            paths: PATHS
                .iter()
                .map(|(p, f)| PathName {
                    path: p.to_string(),
                    family: f.to_string(),
                })
                .collect(),
            reported: vec![true; n],
            cells,
        }
    }

    fn kdoctor() -> CellExpect {
        CellExpect {
            success_rate: Some(1.0),
            mean: Some(Duration::from_millis(5000)),
            p99: None,
            whole_ms: true,
        }
    }

    #[test]
    fn a_healthy_mesh_passes_with_no_findings() {
        let v = judge_matrix(&kdoctor(), &mesh(4, |_, _, _| None));
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!((v.cells, v.failed_cells), (48, 0));
        assert!(v.checks.is_empty() && v.findings.is_empty());
    }

    #[test]
    fn a_lossy_node_is_named_and_only_its_cells_fail() {
        // node-2 drops about 20% of its packets: every cell from or to it fails
        let v = judge_matrix(&kdoctor(), &mesh(5, |s, t, _| (s == 2 || t == 2).then_some(80)));
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(
            v.findings,
            [Finding::Node {
                node: "node-2".into(),
                from: true,
                to: true,
                failed: 27
            }]
        );
        // its row and column, the cell to itself once: 9 pairs × 3 paths
        assert_eq!(v.failed_cells, 27);
        assert!(v.checks.iter().all(|c| match &c.subject {
            Subject::Cell { source, target, .. } => source == "node-2" || target == "node-2",
            _ => false,
        }));
        let c = &v.checks[0];
        assert_eq!((c.observed.as_str(), c.threshold.as_str()), ("80% (80/100)", "≥ 100%"));
    }

    #[test]
    fn one_path_broken_on_one_node_is_named_as_that_path() {
        // node-1's NodePort rule is gone: nodePort cells to node-1 fail
        let v = judge_matrix(&kdoctor(), &mesh(4, |_, t, p| (t == 1 && p == 2).then_some(0)));
        assert_eq!(
            v.findings,
            [Finding::NodePath {
                node: "node-1".into(),
                path: "nodePort".into(),
                family: "ipv4".into(),
                from: false,
                to: true,
                failed: 4
            }]
        );
        assert_eq!(v.failed_cells, 4);
    }

    #[test]
    fn a_path_failing_everywhere_is_the_path() {
        let v = judge_matrix(&kdoctor(), &mesh(4, |_, _, p| (p == 1).then_some(0)));
        assert_eq!(
            v.findings,
            [Finding::Path {
                path: "clusterIP".into(),
                family: "ipv4".into(),
                failed: 16
            }]
        );
    }

    #[test]
    fn single_pairs_are_pairs_and_name_no_node() {
        let v = judge_matrix(
            &kdoctor(),
            &mesh(4, |s, t, p| (s == 0 && t == 3 && p == 0).then_some(99)),
        );
        assert_eq!(v.findings, [Finding::Pairs { failed: 1 }]);
        assert_eq!(
            v.checks[0].subject,
            Subject::Cell {
                source: "node-0".into(),
                target: "node-3".into(),
                path: "pod".into(),
                family: "ipv4".into()
            }
        );
    }

    #[test]
    fn everything_failing_points_at_nothing_in_particular() {
        let v = judge_matrix(&kdoctor(), &mesh(3, |_, _, _| Some(0)));
        assert_eq!(v.findings, [Finding::Everything { cells: 27 }]);
    }

    #[test]
    fn an_agent_that_never_reported_is_named_and_fails_the_round() {
        let mut m = mesh(3, |_, _, _| None);
        m.cells.retain(|c| c.source != 1);
        m.reported[1] = false;
        let v = judge_matrix(&kdoctor(), &m);
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(v.failed_cells, 0);
        assert_eq!(v.findings, [Finding::Silent { node: "node-1".into() }]);
        assert_eq!(v.checks[0].subject, Subject::Agent("node-1".into()));
    }

    #[test]
    fn kdoctor_compares_the_mean_in_whole_milliseconds() {
        let mut e = kdoctor();
        e.mean = Some(Duration::from_millis(1));
        let m = |mean_us| Matrix {
            cells: vec![Cell {
                sent: 10,
                ok: 10,
                mean_us,
                ..Default::default()
            }],
            nodes: vec!["a".into()],
            paths: vec![PathName {
                path: "pod".into(),
                family: "ipv4".into(),
            }],
            reported: vec![true],
        };
        assert_eq!(
            judge_matrix(&e, &m(1_900)).outcome,
            Outcome::Pass,
            "1.9 ms is 1 ms truncated"
        );
        assert_eq!(judge_matrix(&e, &m(2_000)).outcome, Outcome::Fail);
        e.whole_ms = false;
        assert_eq!(judge_matrix(&e, &m(1_900)).outcome, Outcome::Fail);
    }

    #[test]
    fn a_cell_that_sent_nothing_fails() {
        let v = judge_matrix(&kdoctor(), &mesh(3, |_, _, _| None));
        assert_eq!(v.outcome, Outcome::Pass);
        let mut m = mesh(3, |_, _, _| None);
        m.cells[0].sent = 0;
        m.cells[0].ok = 0;
        let v = judge_matrix(&kdoctor(), &m);
        assert_eq!(v.failed_cells, 1);
        assert_eq!(v.checks[0].observed, "nothing sent");
    }

    #[test]
    fn failing_cells_past_the_limit_are_counted_not_listed() {
        let v = judge_matrix(&kdoctor(), &mesh(60, |_, _, _| Some(0)));
        assert_eq!(v.failed_cells, 60 * 60 * 3);
        // two checks per listed cell: its success rate, and its mean (no answers)
        assert_eq!(v.checks.len(), 2 * MAX_CELL_CHECKS);
        assert_eq!(v.unlisted_cells, 60 * 60 * 3 - MAX_CELL_CHECKS as u64);
    }
}
