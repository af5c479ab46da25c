//! Every span, metric and attribute name kpatrol emits, in one place (the README's table
//! is generated from the same list by hand: keep them together).

/// The instrumentation scope.
pub const SCOPE: &str = "kpatrol";

// spans
/// Root span of a round.
pub const SPAN_ROUND: &str = "round";
/// One agent's part of a round.
pub const SPAN_AGENT: &str = "agent";
/// One target pressed by one agent.
pub const SPAN_TARGET: &str = "target";

// metrics (OpenTelemetry names; through the collector's Prometheus exporter dots become
// underscores and counters get `_total`, units a suffix: kpatrol_requests_total,
// kpatrol_request_duration_seconds, …)
/// Counter: attempts by target and outcome (`success`, `failure`) with `kpatrol.code` or `kpatrol.error`.
pub const METRIC_REQUESTS: &str = "kpatrol.requests";
/// Histogram (seconds): latency of answered attempts.
pub const METRIC_REQUEST_DURATION: &str = "kpatrol.request.duration";
/// Gauge (seconds): a latency percentile of a target, `kpatrol.quantile` = p50, p90, p99, max.
pub const METRIC_LATENCY: &str = "kpatrol.latency";
/// Gauge (ratio): successful attempts over sent attempts, per target.
pub const METRIC_SUCCESS_RATIO: &str = "kpatrol.success.ratio";
/// Gauge (seconds): how long the round took.
pub const METRIC_ROUND_DURATION: &str = "kpatrol.round.duration";
/// Gauge: 1 when the round (this agent's part) passed, 0 when not.
pub const METRIC_ROUND_VERDICT: &str = "kpatrol.round.verdict";
/// Gauge: 1 per passing check, 0 per failing one (`kpatrol.check`, `kpatrol.target`);
/// a failing check carries `kpatrol.trace_id`, the round's trace.
pub const METRIC_CHECK: &str = "kpatrol.check";

// the mesh (one round judged as a matrix of cells: source node → target node over a path)
/// Gauge (ratio): a cell's successful over sent requests (`kpatrol.source.node`,
/// `kpatrol.target.node`, `kpatrol.path`, `kpatrol.family`). Every cell when a round has at
/// most [`crate::telemetry::mesh::MAX_CELL_SERIES`], else only the failing ones (at most as many).
pub const METRIC_MESH_CELL_SUCCESS_RATIO: &str = "kpatrol.mesh.cell.success.ratio";
/// Gauge (seconds): a cell's latency, `kpatrol.quantile` = mean, p99; the same cells.
pub const METRIC_MESH_CELL_LATENCY: &str = "kpatrol.mesh.cell.latency";
/// Gauge: failing cells per node (`kpatrol.node`) and `kpatrol.direction` (`from`: its row,
/// `to`: its column), every node every round: the bad node without N² series.
pub const METRIC_MESH_FAILED_CELLS: &str = "kpatrol.mesh.failed_cells";

// attributes
pub const ATTR_TASK: &str = "kpatrol.task";
pub const ATTR_KIND: &str = "kpatrol.kind";
pub const ATTR_MODE: &str = "kpatrol.mode";
pub const ATTR_ROUND_ID: &str = "kpatrol.round.id";
pub const ATTR_VERDICT: &str = "kpatrol.verdict";
pub const ATTR_AGENT_INDEX: &str = "kpatrol.agent.index";
pub const ATTR_TARGET: &str = "kpatrol.target";
pub const ATTR_OUTCOME: &str = "kpatrol.outcome";
pub const ATTR_CODE: &str = "kpatrol.code";
pub const ATTR_ERROR: &str = "kpatrol.error";
pub const ATTR_QUANTILE: &str = "kpatrol.quantile";
pub const ATTR_CHECK: &str = "kpatrol.check";
pub const ATTR_TRACE_ID: &str = "kpatrol.trace_id";
pub const ATTR_SENT: &str = "kpatrol.sent";
pub const ATTR_UNSENT: &str = "kpatrol.unsent";
pub const ATTR_ANSWERED: &str = "kpatrol.answered";
pub const ATTR_FAILED: &str = "kpatrol.failed";
pub const ATTR_SUCCESS_RATIO: &str = "kpatrol.success_ratio";
/// Prefix of per-percentile span attributes: kpatrol.latency_ms.p50 …
pub const ATTR_LATENCY_MS: &str = "kpatrol.latency_ms";
/// Prefix of per-error-kind span attributes: kpatrol.errors.timeout …
pub const ATTR_ERRORS: &str = "kpatrol.errors";
pub const ATTR_FAILED_CHECKS: &str = "kpatrol.failed_checks";
pub const ATTR_NODE: &str = "kpatrol.node";
pub const ATTR_SOURCE_NODE: &str = "kpatrol.source.node";
pub const ATTR_TARGET_NODE: &str = "kpatrol.target.node";
pub const ATTR_PATH: &str = "kpatrol.path";
pub const ATTR_FAMILY: &str = "kpatrol.family";
pub const ATTR_DIRECTION: &str = "kpatrol.direction";
pub const ATTR_CELLS: &str = "kpatrol.cells";
pub const ATTR_FAILED_CELLS: &str = "kpatrol.failed_cells";
/// Whether a mesh agent reported its row.
pub const ATTR_REPORTED: &str = "kpatrol.reported";

// resource attributes (OpenTelemetry's Kubernetes conventions, from the rendered pod)
pub const RES_SERVICE_NAME: &str = "service.name";
pub const RES_NAMESPACE: &str = "k8s.namespace.name";
pub const RES_POD: &str = "k8s.pod.name";
pub const RES_NODE: &str = "k8s.node.name";
pub const RES_JOB: &str = "k8s.job.name";
pub const RES_CRONJOB: &str = "k8s.cronjob.name";
