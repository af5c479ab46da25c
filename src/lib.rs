//! kpatrol: active inspection for Kubernetes.
//!
//! ```text
//! task file ─► task (as written: spanned, per format) ─► plan (defaults, rules, the
//!    command line's overrides, kdoctor's meaning; pure)
//!    ─► pressure (open-loop engine) + probe (a round of one mode's attempts)
//!    ─► results (keyed by target) ─► judge (pure; typed checks and verdict)
//!    ─► report (one versioned `RoundReport`: JSON, termination message, table) and telemetry
//! ```
//!
//! Beside the flow: `render` (plans into typed Kubernetes objects, pure), `cluster` (the
//! only Kubernetes API code), `names` (labels, annotations and env names writers and readers
//! share), `duration` and `diag` (positions and messages).
//!
//! A mode (HTTP, DNS, the mesh) lives in `modes/<mode>/`: its plan, its native kind's targets reader,
//! its attempt and what rendering needs; the list at the end of `modes/mod.rs` registers it
//! with validate, run, render and `kpatrol-probe`.
//!
//! `kpatrol` validates, renders and runs tasks; `kpatrol-probe <mode>` runs one round in a pod.

pub mod cli;
pub mod cluster;
pub mod diag;
pub mod duration;
pub mod judge;
pub mod modes;
pub mod names;
pub mod plan;
pub mod pressure;
pub mod probe;
pub mod render;
pub mod report;
pub mod results;
pub mod round;
pub mod task;
pub mod telemetry;
