//! Judges a synthetic mesh round: N agents × N targets × 3 paths (default 1,000), one node
//! at 80% success, and prints the time the judge took, the cells, the findings and the
//! process's peak RSS. Run by `scripts/bench-mesh` (release build).

use std::time::{Duration, Instant};

use kpatrol::judge::matrix::{Cell, CellExpect, Matrix, PathName, judge_matrix};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let paths = ["pod", "clusterIP", "nodePort"];
    let bad = n / 2;
    let built = Instant::now();
    let mut cells = Vec::with_capacity((n * n) as usize * paths.len());
    for s in 0..n {
        for t in 0..n {
            for p in 0..paths.len() as u16 {
                let ok = if s == bad || t == bad { 16 } else { 20 };
                cells.push(Cell {
                    source: s,
                    target: t,
                    path: p,
                    sent: 20,
                    ok,
                    mean_us: 800 + (s * 7 + t * 13) % 400,
                    p99_us: 3_000,
                });
            }
        }
    }
    let m = Matrix {
        nodes: (0..n).map(|i| format!("node-{i:04}")).collect(),
        paths: paths
            .iter()
            .map(|p| PathName {
                path: p.to_string(),
                family: "ipv4".into(),
            })
            .collect(),
        reported: vec![true; n as usize],
        cells,
    };
    let build = built.elapsed();
    let e = CellExpect {
        success_rate: Some(1.0),
        mean: Some(Duration::from_millis(5000)),
        p99: None,
        whole_ms: true,
    };
    let start = Instant::now();
    let v = judge_matrix(&e, &m);
    let took = start.elapsed();
    println!(
        "bench-matrix: {n} agents × {n} targets × {} paths = {} cells (built in {:.2} s)",
        paths.len(),
        v.cells,
        build.as_secs_f64()
    );
    println!(
        "judged in {:.3} s: {} failed, {} checks listed, {} unlisted; findings {:?}",
        took.as_secs_f64(),
        v.failed_cells,
        v.checks.len(),
        v.unlisted_cells,
        v.findings
    );
    println!("peak RSS {:.1} MB", peak_rss_mb());
}
