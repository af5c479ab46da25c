//! kpatrol: active inspection for Kubernetes.
//!
//! ```text
//! task file ─► task (spanned YAML, kdoctor compatibility) ─► plan (resolved, pure)
//!    ─► pressure (open-loop engine) + probe (one mode's attempt) ─► results
//!    ─► judge (pure verdict) ─► report (table, JSON, termination message)
//! ```
//!
//! `kpatrol` validates, renders and runs tasks; `kpatrol-probe <mode>` runs one round in a pod.

pub mod cli;
pub mod cluster;
pub mod diag;
pub mod judge;
pub mod local;
pub mod names;
pub mod plan;
pub mod pressure;
pub mod probe;
pub mod render;
pub mod report;
pub mod results;
pub mod task;
pub mod telemetry;
