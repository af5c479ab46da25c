//! The mesh's telemetry: a mesh round as one trace (root span `round` with the verdict and
//! the findings, a child span `agent` per node with its row and column) and metrics a
//! dashboard draws the matrix from: each cell's success ratio and latency (every cell up to
//! [`MAX_CELL_SERIES`], else the failing ones), and per node its failing cells from and to
//! it, always, so the bad node shows without N² series. Building is pure; sending is the
//! round's own ([`super::send`]).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

use super::names::*;
use super::{Config, ExportError, TraceIds, span, span_id};
use crate::judge::Outcome;
use crate::judge::matrix::{Cell, cell_passes};
use crate::plan::Plan;
use crate::report::mesh::MeshReport;

/// The most cells whose own series a round exports; past it, only failing cells (at most as
/// many). A 1,000-node mesh has a million cells per path: a time series each would swamp a
/// collector.
pub const MAX_CELL_SERIES: usize = 10_000;

/// The most failing cells an agent's span names in its status.
const CELLS_IN_STATUS: usize = 5;

/// Row and column tallies per node: cells from it, failing from it, to it, failing to it,
/// and the first failing cells touching it (for its span's status).
#[derive(Clone, Default)]
struct Tally<'c> {
    from: u64,
    failed_from: u64,
    to: u64,
    failed_to: u64,
    examples: Vec<&'c Cell>,
}

/// Every node's tally, in one pass over the cells.
fn tallies(r: &MeshReport) -> Vec<Tally<'_>> {
    let mut t = vec![Tally::default(); r.matrix.nodes.len()];
    for c in &r.matrix.cells {
        let failed = !cell_passes(&r.expect, c);
        if let Some(s) = t.get_mut(c.source as usize) {
            s.from += 1;
            s.failed_from += failed as u64;
            if failed && s.examples.len() < CELLS_IN_STATUS {
                s.examples.push(c);
            }
        }
        if let Some(d) = t.get_mut(c.target as usize) {
            d.to += 1;
            d.failed_to += failed as u64;
            // a cell to itself is already among its examples
            if failed && c.source != c.target && d.examples.len() < CELLS_IN_STATUS {
                d.examples.push(c);
            }
        }
    }
    t
}

/// The spans of one mesh round. Pure.
pub fn spans(ids: &TraceIds, plan: &Plan, r: &MeshReport) -> Vec<SpanData> {
    let end = r.started_at + Duration::from_secs_f64(r.duration_seconds.max(0.0));
    let common = vec![
        KeyValue::new(ATTR_TASK, plan.name.clone()),
        KeyValue::new(ATTR_KIND, plan.kind.clone()),
        KeyValue::new(ATTR_MODE, plan.mode.name()),
        KeyValue::new(ATTR_ROUND_ID, "local"),
    ];
    let mut attrs = common.clone();
    attrs.extend([
        KeyValue::new(ATTR_VERDICT, r.verdict.as_str()),
        KeyValue::new(ATTR_CELLS, r.cells as i64),
        KeyValue::new(ATTR_FAILED_CELLS, r.failed_cells as i64),
    ]);
    let failed = (r.verdict == Outcome::Fail).then(|| {
        if r.findings.is_empty() {
            format!("{} of {} cells failed", r.failed_cells, r.cells)
        } else {
            r.findings.join("; ")
        }
    });
    let mut out = vec![span(
        ids,
        ids.round_span,
        SpanId::INVALID,
        SPAN_ROUND,
        r.started_at,
        end,
        attrs,
        failed,
    )];
    let name = |i: u32| r.matrix.nodes.get(i as usize).cloned().unwrap_or_default();
    for (i, t) in tallies(r).iter().enumerate() {
        let node = name(i as u32);
        let reported = r.matrix.reported.get(i).copied().unwrap_or(false);
        let mut attrs = common.clone();
        attrs.extend([
            KeyValue::new(ATTR_NODE, node.clone()),
            KeyValue::new(ATTR_AGENT_INDEX, i as i64),
            KeyValue::new(ATTR_REPORTED, reported),
            KeyValue::new(ATTR_CELLS, t.from as i64),
            KeyValue::new(format!("{ATTR_FAILED_CELLS}.from"), t.failed_from as i64),
            KeyValue::new(format!("{ATTR_FAILED_CELLS}.to"), t.failed_to as i64),
        ]);
        let status = if !reported {
            Some(format!("{node}: its agent never reported"))
        } else if t.failed_from + t.failed_to > 0 {
            let examples: Vec<String> = t
                .examples
                .iter()
                .map(|c| {
                    let p = r.matrix.paths.get(c.path as usize);
                    format!(
                        "{} → {} {} {}: {}/{} ok",
                        name(c.source),
                        name(c.target),
                        p.map(|p| p.path.as_str()).unwrap_or("?"),
                        p.map(|p| p.family.as_str()).unwrap_or("?"),
                        c.ok,
                        c.sent
                    )
                })
                .collect();
            Some(format!(
                "{} failing cells from {node}, {} to it: {}",
                t.failed_from,
                t.failed_to,
                examples.join("; ")
            ))
        } else {
            None
        };
        out.push(span(
            ids,
            span_id(ids, 1_000_000 + i as u64),
            ids.round_span,
            SPAN_AGENT,
            r.started_at,
            end,
            attrs,
            status,
        ));
    }
    out
}

/// Records one mesh round's metrics.
pub fn record(meter: &opentelemetry::metrics::Meter, plan: &Plan, r: &MeshReport) {
    let ratio = meter
        .f64_gauge(METRIC_MESH_CELL_SUCCESS_RATIO)
        .with_description("A mesh cell's successful over sent requests")
        .build();
    let latency = meter
        .f64_gauge(METRIC_MESH_CELL_LATENCY)
        .with_unit("s")
        .with_description("A mesh cell's latency, mean and p99")
        .build();
    let failed = meter
        .i64_gauge(METRIC_MESH_FAILED_CELLS)
        .with_description("Failing mesh cells from (row) and to (column) a node")
        .build();
    let verdict = meter
        .i64_gauge(METRIC_ROUND_VERDICT)
        .with_description("1 pass, 0 fail")
        .build();
    let round_duration = meter.f64_gauge(METRIC_ROUND_DURATION).with_unit("s").build();
    let base = [
        KeyValue::new(ATTR_TASK, plan.name.clone()),
        KeyValue::new(ATTR_KIND, plan.kind.clone()),
    ];
    let with = |extra: &[KeyValue]| -> Vec<KeyValue> { base.iter().cloned().chain(extra.iter().cloned()).collect() };
    let all = r.matrix.cells.len() <= MAX_CELL_SERIES;
    let name = |i: u32| r.matrix.nodes.get(i as usize).cloned().unwrap_or_default();
    for c in r
        .matrix
        .cells
        .iter()
        .filter(|c| all || !cell_passes(&r.expect, c))
        .take(MAX_CELL_SERIES)
    {
        let Some(p) = r.matrix.paths.get(c.path as usize) else {
            continue;
        };
        let cell = [
            KeyValue::new(ATTR_SOURCE_NODE, name(c.source)),
            KeyValue::new(ATTR_TARGET_NODE, name(c.target)),
            KeyValue::new(ATTR_PATH, p.path.clone()),
            KeyValue::new(ATTR_FAMILY, p.family.clone()),
        ];
        let rate = if c.sent == 0 { 0.0 } else { c.ok as f64 / c.sent as f64 };
        ratio.record(rate, &with(&cell));
        if c.ok > 0 {
            for (q, us) in [("mean", c.mean_us), ("p99", c.p99_us)] {
                let mut attrs = with(&cell);
                attrs.push(KeyValue::new(ATTR_QUANTILE, q));
                latency.record(us as f64 / 1e6, &attrs);
            }
        }
    }
    for (i, t) in tallies(r).iter().enumerate() {
        for (direction, n) in [("from", t.failed_from), ("to", t.failed_to)] {
            failed.record(
                n as i64,
                &with(&[
                    KeyValue::new(ATTR_NODE, name(i as u32)),
                    KeyValue::new(ATTR_DIRECTION, direction),
                ]),
            );
        }
    }
    verdict.record(i64::from(r.verdict == Outcome::Pass), &base);
    round_duration.record(r.duration_seconds, &base);
}

/// Sends one mesh round's trace and metrics. Bounded by `cfg.flush`.
pub async fn export(cfg: &Config, plan: &Plan, r: &MeshReport, ids: &TraceIds) -> Result<(), ExportError> {
    super::send(cfg, plan, || spans(ids, plan, r), |meter| record(meter, plan, r)).await
}
