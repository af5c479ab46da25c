//! The mesh (`reach`): kdoctor's NetReach, planned in `plan::kdoctor`. Validated, not yet
//! rendered or run.

use serde::Serialize;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

/// The mesh: which paths between agents to check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReachPlan {
    pub ipv4: bool,
    pub ipv6: bool,
    pub endpoint: bool,
    pub multus_interface: bool,
    pub cluster_ip: bool,
    pub node_port: bool,
    pub load_balancer: bool,
    pub ingress: bool,
}

impl RoundMode for ReachPlan {
    const NAME: &'static str = "reach";
    const ABOUT: &'static str = "The mesh: every agent to every agent over every path (kdoctor NetReach).";
    const NATIVE: Option<NativeKind> = None;
    const RUNS: bool = false;

    fn targets(&self) -> Vec<(&str, &Expect)> {
        Vec::new()
    }

    async fn prepare(&self, _: &Pressure, _: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        Err(ProbeError::ModeNotAvailable(Self::NAME))
    }

    fn mounts(&self, _: &mut Needs<'_>) {}
}
