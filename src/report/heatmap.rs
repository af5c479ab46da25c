//! The mesh's matrix as people read it in a terminal: one grid per path and family, a row
//! per source node and a column per target node, each cell a mark (`·` passed, `▒` failed
//! with some success, `█` failed with none, ` ` not pressed this round, `?` the row of an
//! agent that never reported), the findings of the judge under it. Past [`MAX_GRID`] nodes
//! a grid does not fit a terminal: each node's failing row and column cells are listed
//! instead. Pure: text from the matrix and its verdict.

use std::fmt::Write as _;

use crate::judge::matrix::{CellExpect, Finding, Matrix, MatrixVerdict, cell_passes};

/// The most nodes drawn as a grid.
pub const MAX_GRID: usize = 64;

/// The matrix of `m`, judged by `e` into `v`, as text.
pub fn heatmap(m: &Matrix, e: &CellExpect, v: &MatrixVerdict) -> String {
    let n = m.nodes.len();
    let mut out = String::new();
    let paths = m.paths.len().max(1);
    // marks[path][source][target], only when the grid is drawn
    let grid = n <= MAX_GRID;
    let mut marks = vec![' '; if grid { paths * n * n } else { 0 }];
    let mut row_failed = vec![0u64; n];
    let mut col_failed = vec![0u64; n];
    for c in &m.cells {
        let (s, t, p) = (c.source as usize, c.target as usize, c.path as usize);
        let pass = cell_passes(e, c);
        if !pass {
            if let Some(r) = row_failed.get_mut(s) {
                *r += 1;
            }
            if let Some(r) = col_failed.get_mut(t) {
                *r += 1;
            }
        }
        if let Some(slot) = marks.get_mut((p * n + s) * n + t) {
            *slot = match (pass, c.ok) {
                (true, _) => '·',
                (false, 0) => '█',
                (false, _) => '▒',
            };
        }
    }
    let silent = |s: usize| m.reported.get(s).is_some_and(|r| !r);
    if grid {
        let width = m.nodes.iter().map(|x| x.chars().count()).max().unwrap_or(0);
        for (p, path) in m.paths.iter().enumerate() {
            let _ = writeln!(out, "{} {}: source ↓ target →", path.path, path.family);
            // the target's index along the top, by tens and units
            if n > 9 {
                let tens: String = (0..n)
                    .map(|t| {
                        if t % 10 == 0 {
                            char::from(b'0' + ((t / 10) % 10) as u8)
                        } else {
                            ' '
                        }
                    })
                    .collect();
                let _ = writeln!(out, "{:width$}  {tens}", "");
            }
            let units: String = (0..n).map(|t| char::from(b'0' + (t % 10) as u8)).collect();
            let _ = writeln!(out, "{:width$}  {units}", "");
            for s in 0..n {
                let row: String = (0..n)
                    .map(|t| {
                        if silent(s) {
                            return '?';
                        }
                        marks.get((p * n + s) * n + t).copied().unwrap_or(' ')
                    })
                    .collect();
                let name = m.nodes.get(s).map(String::as_str).unwrap_or("?");
                let _ = writeln!(out, "{name:>width$}  {row}  {s}");
            }
            out.push('\n');
        }
        out.push_str(
            "· passed  ▒ failed (some succeeded)  █ failed (none succeeded)  ? no report  (blank: not pressed)\n",
        );
    } else {
        let _ = writeln!(
            out,
            "{n} nodes: too many for a grid; nodes with failing cells (from / to):"
        );
        for s in 0..n {
            let (r, c) = (
                row_failed.get(s).copied().unwrap_or(0),
                col_failed.get(s).copied().unwrap_or(0),
            );
            if r > 0 || c > 0 || silent(s) {
                let name = m.nodes.get(s).map(String::as_str).unwrap_or("?");
                let note = if silent(s) { "  no report" } else { "" };
                let _ = writeln!(out, "  {name}: {r} / {c}{note}");
            }
        }
    }
    let _ = writeln!(
        out,
        "{} of {} cells failed{}",
        v.failed_cells,
        v.cells,
        if v.unlisted_cells > 0 {
            format!(" ({} not listed among the checks)", v.unlisted_cells)
        } else {
            String::new()
        }
    );
    for f in &v.findings {
        let _ = writeln!(out, "{}", finding_text(f));
    }
    out
}

/// One finding as a sentence.
pub fn finding_text(f: &Finding) -> String {
    let dir = |from: bool, to: bool| match (from, to) {
        (true, true) => "from and to it",
        (true, false) => "from it",
        _ => "to it",
    };
    match f {
        Finding::Everything { cells } => format!("every cell failed ({cells}): nothing points at one node or path"),
        Finding::Node { node, from, to, failed } => {
            format!(
                "node {node}: every cell {} failed ({failed} cells): the node is the likely cause",
                dir(*from, *to)
            )
        }
        Finding::NodePath {
            node,
            path,
            family,
            from,
            to,
            failed,
        } => format!(
            "node {node}, path {path} {family}: every cell {} over this path failed ({failed}), its other paths passed",
            dir(*from, *to)
        ),
        Finding::Path { path, family, failed } => {
            format!("path {path} {family}: failed for every node ({failed} cells), the other paths passed")
        }
        Finding::Pairs { failed } => format!("{failed} failing cell(s) between single pairs of nodes"),
        Finding::Silent { node } => format!("node {node}: its agent never reported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::matrix::judge_matrix;

    use crate::judge::matrix::fixture::{E, square as mesh};

    #[test]
    fn a_bad_node_is_a_cross_in_the_grid_and_named_under_it() {
        let m = mesh(4, |s, t| (s == 1 || t == 1).then_some(if s == t { 0 } else { 8 }));
        let v = judge_matrix(&E, &m);
        let text = heatmap(&m, &E, &v);
        let grid: Vec<&str> = text.lines().skip(2).take(4).collect();
        assert_eq!(
            grid,
            ["n0  ·▒··  0", "n1  ▒█▒▒  1", "n2  ·▒··  2", "n3  ·▒··  3"],
            "{text}"
        );
        assert!(text.contains("7 of 16 cells failed"), "{text}");
        assert!(
            text.contains("node n1: every cell from and to it failed (7 cells): the node is the likely cause"),
            "{text}"
        );
    }

    #[test]
    fn a_silent_agent_is_a_row_of_question_marks_and_unpressed_cells_are_blank() {
        let mut m = mesh(3, |_, _| None);
        m.cells.retain(|c| c.source != 2 && !(c.source == 0 && c.target == 1));
        m.reported[2] = false;
        let v = judge_matrix(&E, &m);
        let text = heatmap(&m, &E, &v);
        let grid: Vec<&str> = text.lines().skip(2).take(3).collect();
        assert_eq!(grid, ["n0  · ·  0", "n1  ···  1", "n2  ???  2"], "{text}");
        assert!(text.contains("node n2: its agent never reported"), "{text}");
    }

    #[test]
    fn past_the_grid_limit_nodes_with_failing_cells_are_listed() {
        let m = mesh(MAX_GRID as u32 + 1, |s, _| (s == 5).then_some(0));
        let v = judge_matrix(&E, &m);
        let text = heatmap(&m, &E, &v);
        assert!(text.starts_with("65 nodes: too many for a grid"), "{text}");
        assert!(text.contains("  n5: 65 / 1\n"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("  n")).count(),
            65,
            "n5, and each node's cell to n5"
        );
    }
}
