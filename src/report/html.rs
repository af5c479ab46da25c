//! The mesh's matrix as one self-contained HTML page (`kpatrol run --html FILE`): the same
//! reading as the terminal heatmap ([`super::heatmap`]), for a browser and for sharing. A
//! title (task, verdict, counts), the judge's findings, then one `<table>` per path and
//! family: a row per source node, a column per target node, each cell a `<td>` whose classes
//! say its state (`pass`; `fail` with `none` or `some`; `silent`: its source never reported;
//! `unpressed`: no cell this round), with `data-source`, `data-target` and `data-path` and a
//! tooltip of its counts and latency. Nodes the findings name are marked `suspect` in the
//! headers. Past [`MAX_GRID`] nodes the grids would not fit a screen: the failing cells are
//! listed instead, at most [`MAX_LISTED`].
//!
//! The page loads nothing: inline CSS, no script, no fonts or images, so it opens offline
//! and from a mail attachment. Every name (nodes, paths, the task) is escaped: they come from
//! the task file and the cluster. Pure: a string from the matrix and its verdict; writing
//! the file is the CLI's.

use std::fmt::Write as _;
use std::time::Duration;

use super::heatmap::{MAX_GRID, finding_text};
use crate::duration::format_duration;
use crate::judge::matrix::{Cell, CellExpect, Finding, Matrix, MatrixVerdict, cell_passes};
use crate::judge::{Outcome, pct};

/// The most failing cells a page past [`MAX_GRID`] nodes lists; the rest are counted.
pub const MAX_LISTED: usize = 10_000;

/// The page's style: pass green, fail red (darker when nothing succeeded), silent grey,
/// unpressed white.
const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}
h2{font-size:1.1em;margin:1.2em 0 .4em}
.verdict.pass{color:#1b7a2e}.verdict.fail{color:#b71c1c}
.summary{color:#555;margin:0 0 1em}
ul.findings{margin:.3em 0 1em;padding-left:1.4em}
table.grid{border-collapse:collapse}
table.grid td{width:14px;height:14px;min-width:14px;padding:0;border:1px solid #e0e0e0}
table.grid th{font-weight:normal;font-size:12px;padding:1px 4px;white-space:nowrap}
table.grid th.row{text-align:right}
table.grid th.col{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;padding:4px 1px}
th.suspect{color:#b71c1c;font-weight:bold;background:#fdecea}
td.pass{background:#43a047}
td.fail.some{background:#e57373}
td.fail.none{background:#8b0000}
td.silent{background:#9e9e9e}
td.unpressed{background:#fff}
.legend .key{white-space:nowrap;margin-right:1.2em}
.legend .swatch{display:inline-block;width:12px;height:12px;border:1px solid #bbb;vertical-align:middle;margin-right:.3em}
table.cells{border-collapse:collapse}
table.cells th,table.cells td{border:1px solid #ddd;padding:2px 8px;text-align:left}
table.cells td.num{text-align:right}
";

/// The page of `m`, judged by `e` into `v`, for the task `title`.
pub fn heatmap_html(title: &str, m: &Matrix, e: &CellExpect, v: &MatrixVerdict) -> String {
    let n = m.nodes.len();
    let verdict = match v.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
    };
    let class = v.outcome.as_str();
    let title = escape(title);
    let mut out = String::with_capacity(4096 + 64 * m.cells.len().min(MAX_GRID * MAX_GRID * 4));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>kpatrol mesh {title}: {verdict}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>kpatrol mesh {title}: <span class=\"verdict {class}\">{verdict}</span></h1>\n\
         <p class=\"summary\">{n} nodes, {} cells, {} failed</p>\n",
        v.cells, v.failed_cells
    );
    if !v.findings.is_empty() {
        out.push_str("<h2>Findings</h2>\n<ul class=\"findings\">\n");
        for f in &v.findings {
            let _ = writeln!(out, "<li>{}</li>", escape(&finding_text(f)));
        }
        out.push_str("</ul>\n");
    }
    if n <= MAX_GRID {
        grids(&mut out, m, e, v);
    } else {
        failing_list(&mut out, m, e);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// One grid per path and family, and the legend.
fn grids(out: &mut String, m: &Matrix, e: &CellExpect, v: &MatrixVerdict) {
    let n = m.nodes.len();
    let paths = m.paths.len();
    // the cell of (path, source, target), by its index in m.cells
    let mut at: Vec<Option<&Cell>> = vec![None; paths * n * n];
    for c in &m.cells {
        let (s, t, p) = (c.source as usize, c.target as usize, c.path as usize);
        if s < n
            && t < n
            && let Some(slot) = at.get_mut((p * n + s) * n + t)
        {
            *slot = Some(c);
        }
    }
    let suspects = suspects(v);
    let suspect = |name: &str| suspects.contains(&name);
    let header_class = |kind: &str, name: &str| {
        if suspect(name) {
            format!("{kind} suspect")
        } else {
            kind.to_string()
        }
    };
    let names: Vec<String> = m.nodes.iter().map(|x| escape(x)).collect();
    for (p, path) in m.paths.iter().enumerate() {
        let label = escape(&format!("{} {}", path.path, path.family));
        let _ = write!(
            out,
            "<h2>{label}: source &darr; target &rarr;</h2>\n<table class=\"grid\" data-path=\"{label}\">\n<tr><th></th>"
        );
        for (t, name) in m.nodes.iter().zip(&names) {
            let _ = write!(
                out,
                "<th class=\"{}\" title=\"{name}\">{name}</th>",
                header_class("col", t)
            );
        }
        out.push_str("</tr>\n");
        for (s, (source, sname)) in m.nodes.iter().zip(&names).enumerate() {
            let silent = m.reported.get(s).is_some_and(|r| !r);
            let _ = write!(out, "<tr><th class=\"{}\">{sname}</th>", header_class("row", source));
            for (t, tname) in names.iter().enumerate() {
                let cell = at.get((p * n + s) * n + t).copied().flatten();
                let (class, tip) = match cell {
                    _ if silent => ("silent", format!("{sname} &rarr; {tname}, {label}: no report")),
                    None => ("unpressed", format!("{sname} &rarr; {tname}, {label}: not pressed")),
                    Some(c) => (
                        state(e, c),
                        format!("{sname} &rarr; {tname}, {label}: {}", escape(&counts(c))),
                    ),
                };
                let _ = write!(
                    out,
                    "<td class=\"{class}\" data-source=\"{sname}\" data-target=\"{tname}\" data-path=\"{label}\" title=\"{tip}\"></td>"
                );
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("<p class=\"legend\">");
    for (colour, what) in [
        ("#43a047", "passed"),
        ("#e57373", "failed (some succeeded)"),
        ("#8b0000", "failed (none succeeded)"),
        ("#9e9e9e", "no report"),
        ("#fff", "not pressed"),
        ("#fdecea", "node named by a finding"),
    ] {
        let _ = write!(
            out,
            "<span class=\"key\"><span class=\"swatch\" style=\"background:{colour}\"></span>{what}</span>"
        );
    }
    out.push_str("</p>\n");
}

/// Past [`MAX_GRID`] nodes: the failing cells as a table, at most [`MAX_LISTED`].
fn failing_list(out: &mut String, m: &Matrix, e: &CellExpect) {
    let _ = write!(
        out,
        "<h2>Failing cells</h2>\n<p>{} nodes: too many for a grid; the failing cells:</p>\n\
         <table class=\"cells\">\n<tr><th>source</th><th>target</th><th>path</th><th>sent</th><th>ok</th>\
         <th>mean</th><th>p99</th></tr>\n",
        m.nodes.len()
    );
    let name = |i: u32| escape(m.nodes.get(i as usize).map(String::as_str).unwrap_or("?"));
    let mut failing = m.cells.iter().filter(|c| !cell_passes(e, c));
    for c in failing.by_ref().take(MAX_LISTED) {
        let path = m
            .paths
            .get(c.path as usize)
            .map(|p| escape(&format!("{} {}", p.path, p.family)))
            .unwrap_or_else(|| "?".into());
        let (mean, p99) = latencies(c);
        let _ = writeln!(
            out,
            "<tr class=\"fail {}\"><td>{}</td><td>{}</td><td>{path}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{mean}</td><td class=\"num\">{p99}</td></tr>",
            if c.ok == 0 { "none" } else { "some" },
            name(c.source),
            name(c.target),
            c.sent,
            c.ok
        );
    }
    out.push_str("</table>\n");
    let more = failing.count();
    if more > 0 {
        let _ = writeln!(out, "<p class=\"more\">and {more} more failing cells, not listed</p>");
    }
}

/// A judged cell's classes.
fn state(e: &CellExpect, c: &Cell) -> &'static str {
    match (cell_passes(e, c), c.ok) {
        (true, _) => "pass",
        (false, 0) => "fail none",
        (false, _) => "fail some",
    }
}

/// A cell's counts and latency, for its tooltip.
fn counts(c: &Cell) -> String {
    let rate = if c.sent == 0 {
        "-".to_string()
    } else {
        pct(c.ok as f64 / c.sent as f64)
    };
    let (mean, p99) = latencies(c);
    format!("sent {}, ok {}, success {rate}, mean {mean}, p99 {p99}", c.sent, c.ok)
}

/// A cell's mean and p99, or `-` when nothing was answered.
fn latencies(c: &Cell) -> (String, String) {
    if c.ok == 0 {
        return ("-".into(), "-".into());
    }
    let d = |us: u32| format_duration(Duration::from_micros(us as u64));
    (d(c.mean_us), d(c.p99_us))
}

/// The nodes a finding names.
fn suspects(v: &MatrixVerdict) -> Vec<&str> {
    v.findings
        .iter()
        .filter_map(|f| match f {
            Finding::Node { node, .. } | Finding::NodePath { node, .. } | Finding::Silent { node } => {
                Some(node.as_str())
            }
            Finding::Everything { .. } | Finding::Path { .. } | Finding::Pairs { .. } => None,
        })
        .collect()
}

/// `s` safe in HTML text and in a double- or single-quoted attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::matrix::judge_matrix;

    use crate::judge::matrix::fixture::{E, square as mesh};

    /// Every `<td>` opening tag of the page.
    fn tds(html: &str) -> Vec<&str> {
        html.split("<td ")
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(a, _)| a))
            .collect()
    }

    /// The `<td>` of the cell source → target.
    fn td<'a>(html: &'a str, source: &str, target: &str) -> &'a str {
        let want = format!("data-source=\"{source}\" data-target=\"{target}\"");
        let found: Vec<&str> = tds(html).into_iter().filter(|t| t.contains(&want)).collect();
        assert_eq!(found.len(), 1, "{source} → {target} in {html}");
        found[0]
    }

    #[test]
    fn each_state_has_its_class() {
        // n1 fails with some to n2, none to n3; n0 → n1 is not pressed; n3 never reported
        let mut m = mesh(4, |s, t| match (s, t) {
            (1, 2) => Some(5),
            (1, 3) => Some(0),
            _ => None,
        });
        m.cells.retain(|c| c.source != 3 && !(c.source == 0 && c.target == 1));
        m.reported[3] = false;
        let v = judge_matrix(&E, &m);
        let html = heatmap_html("mesh", &m, &E, &v);
        assert_eq!(tds(&html).len(), 16, "{html}");
        assert!(td(&html, "n0", "n0").starts_with("class=\"pass\""));
        assert!(td(&html, "n1", "n2").starts_with("class=\"fail some\""));
        assert!(td(&html, "n1", "n3").starts_with("class=\"fail none\""));
        assert!(td(&html, "n0", "n1").starts_with("class=\"unpressed\""));
        for t in 0..4 {
            assert!(td(&html, "n3", &format!("n{t}")).starts_with("class=\"silent\""));
        }
        let c = td(&html, "n1", "n2");
        assert!(c.contains("data-path=\"pod ipv4\""), "{c}");
        assert!(
            c.contains("title=\"n1 &rarr; n2, pod ipv4: sent 10, ok 5, success 50%, mean 0.5ms, p99 0.9ms\""),
            "{c}"
        );
        assert!(td(&html, "n1", "n3").contains("mean -, p99 -"));
        assert!(html.contains("<span class=\"verdict fail\">FAIL</span>"), "{html}");
        assert!(html.contains("4 nodes, 11 cells, 2 failed"), "{html}");
        assert!(html.contains("<li>node n3: its agent never reported</li>"), "{html}");
        // the silent node is a suspect in its row and its column; the others are not
        assert!(html.contains("<th class=\"row suspect\">n3</th>"), "{html}");
        assert!(
            html.contains("<th class=\"col suspect\" title=\"n3\">n3</th>"),
            "{html}"
        );
        assert!(html.contains("<th class=\"row\">n0</th>"), "{html}");
        // nothing loads from elsewhere
        for bad in ["http://", "https://", "src=", "<script", "<link", "@import", "url("] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
    }

    #[test]
    fn a_passing_mesh_says_pass_and_lists_no_findings() {
        let m = mesh(3, |_, _| None);
        let v = judge_matrix(&E, &m);
        let html = heatmap_html("mesh", &m, &E, &v);
        assert!(html.contains("<span class=\"verdict pass\">PASS</span>"), "{html}");
        assert!(!html.contains("Findings") && !html.contains("suspect\""), "{html}");
        assert!(tds(&html).iter().all(|t| t.starts_with("class=\"pass\"")), "{html}");
    }

    #[test]
    fn every_name_is_escaped() {
        let mut m = mesh(2, |s, _| (s == 1).then_some(0));
        m.nodes[1] = "<script>alert(\"x\")</script>&'".into();
        m.paths[0].path = "<b>pod".into();
        let v = judge_matrix(&E, &m);
        let html = heatmap_html("<script>alert(1)</script>", &m, &E, &v);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"),
            "{html}"
        );
        assert!(html.contains("<title>kpatrol mesh &lt;script&gt;alert(1)&lt;/script&gt;: FAIL</title>"));
        // the finding naming it is escaped too
        assert!(html.contains("<li>node &lt;script&gt;"), "{html}");
        assert!(html.contains("data-path=\"&lt;b&gt;pod ipv4\""), "{html}");
    }

    #[test]
    fn past_the_grid_limit_the_failing_cells_are_listed() {
        let m = mesh(MAX_GRID as u32 + 1, |s, t| {
            (s == 5 && t < 3).then_some(if t == 0 { 0 } else { 4 })
        });
        let v = judge_matrix(&E, &m);
        let html = heatmap_html("big", &m, &E, &v);
        assert!(!html.contains("<table class=\"grid\""), "no grid past {MAX_GRID} nodes");
        assert!(html.contains("65 nodes: too many for a grid"));
        let rows: Vec<&str> = html.lines().filter(|l| l.starts_with("<tr class=\"fail")).collect();
        assert_eq!(
            rows,
            [
                "<tr class=\"fail none\"><td>n5</td><td>n0</td><td>pod ipv4</td><td class=\"num\">10</td>\
                 <td class=\"num\">0</td><td class=\"num\">-</td><td class=\"num\">-</td></tr>",
                "<tr class=\"fail some\"><td>n5</td><td>n1</td><td>pod ipv4</td><td class=\"num\">10</td>\
                 <td class=\"num\">4</td><td class=\"num\">0.5ms</td><td class=\"num\">0.9ms</td></tr>",
                "<tr class=\"fail some\"><td>n5</td><td>n2</td><td>pod ipv4</td><td class=\"num\">10</td>\
                 <td class=\"num\">4</td><td class=\"num\">0.5ms</td><td class=\"num\">0.9ms</td></tr>",
            ]
        );
        assert!(!html.contains("more failing cells"));
    }

    #[test]
    fn the_listing_is_bounded_and_counts_the_rest() {
        // 110 nodes, every cell failing: 12,100 cells, 10,000 listed
        let m = mesh(110, |_, _| Some(0));
        let v = judge_matrix(&E, &m);
        let html = heatmap_html("big", &m, &E, &v);
        assert_eq!(
            html.lines().filter(|l| l.starts_with("<tr class=\"fail")).count(),
            MAX_LISTED
        );
        assert!(html.contains("and 2100 more failing cells, not listed"), "tail");
    }
}
