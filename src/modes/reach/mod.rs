//! The mesh (`reach`): a native Mesh or kdoctor's NetReach, planned in `read` and
//! `plan::kdoctor`. A round on one machine, its agents on loopback or each in a network
//! namespace of its own ([`local`], [`netns`], `kpatrol run`); in a cluster, one agent per
//! node ([`agent`], `kpatrol-probe reach`) ordered and gathered by the launcher
//! (`cluster::mesh`); what every agent presses ([`aims`]) and which peers when a neighbour
//! limit bounds the mesh ([`neighbours`]). The matrix judge is `judge::matrix`, its heatmap
//! `report::heatmap`.

pub mod agent;
pub mod aims;
pub mod local;
pub mod netns;
pub(crate) mod read;

use serde::Serialize;

use super::{NativeKind, Needs, Prepared, RoundMode};
use crate::plan::{CodeKind, CodeRange, Expect, Pressure};
use crate::probe::{Mounts, ProbeError};

/// The pod annotation Multus writes with every interface's addresses.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// The addresses of a pod's secondary (non-default) interfaces from Multus'
/// `network-status` annotation (a JSON list of `{name, interface, ips, default}`); nothing
/// when it is absent or does not read. Pure.
pub fn multus_ips(annotation: Option<&str>) -> Vec<std::net::IpAddr> {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        ips: Vec<String>,
        #[serde(default)]
        default: bool,
    }
    let Some(text) = annotation else { return Vec::new() };
    let list: Vec<Status> = serde_json::from_str(text).unwrap_or_default();
    list.into_iter()
        .filter(|s| !s.default)
        .flat_map(|s| s.ips)
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// A path between agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    Pod,
    ClusterIp,
    NodePort,
    Multus,
    /// The agents' Service's load-balancer address (in a cluster only).
    LoadBalancer,
    /// The agents' Ingress (in a cluster only).
    Ingress,
}

impl Via {
    /// The paths a local mesh takes (and `--impair` names).
    pub const ALL: [Via; 4] = [Via::Pod, Via::ClusterIp, Via::NodePort, Via::Multus];

    /// The path's name in reports and in `--impair` (kdoctor's words).
    pub fn name(self) -> &'static str {
        match self {
            Via::Pod => "pod",
            Via::ClusterIp => "clusterIP",
            Via::NodePort => "nodePort",
            Via::Multus => "multus",
            Via::LoadBalancer => "loadBalancer",
            Via::Ingress => "ingress",
        }
    }

    pub fn from_name(s: &str) -> Option<Via> {
        Via::ALL.into_iter().find(|v| v.name().eq_ignore_ascii_case(s))
    }
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// As people write it.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

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
    /// How many peers each agent presses per round.
    pub peers: Peers,
    /// The Ingress the `ingress` path goes through (a native Mesh names it; kdoctor's comes
    /// from its chart).
    pub ingress_route: Option<IngressRoute>,
}

impl ReachPlan {
    /// The families the task enables.
    pub fn families(&self) -> Vec<Family> {
        [(self.ipv4, Family::V4), (self.ipv6, Family::V6)]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect()
    }
}

/// How many peers each agent presses per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Peers {
    /// Every agent, itself included (kdoctor's NetReach).
    All,
    /// This many others, chosen by [`neighbours`] and rotated each round.
    Limit(u32),
}

/// The Ingress of a mesh's `ingress` path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRoute {
    pub class_name: String,
    pub host: String,
    pub path: String,
}

impl RoundMode for ReachPlan {
    const NAME: &'static str = "reach";
    const ABOUT: &'static str = "The mesh: every agent to every agent over every path (Mesh, kdoctor NetReach).";
    const NATIVE: Option<NativeKind> = Some(NativeKind {
        kind: "Mesh",
        codes: CodeKind::Http,
        // an agent's target answers every request: any answer is the path working
        default_codes: CodeRange { from: 100, to: 599 },
        targets: read::mesh_targets,
        expect: read::mesh_expect,
        one_at_a_time: false,
    });
    const RUNS: bool = false;
    const RENDERS: bool = true;

    fn targets(&self) -> Vec<(&str, &Expect)> {
        Vec::new()
    }

    async fn prepare(&self, _: &Pressure, _: &Mounts) -> Result<Vec<Prepared>, ProbeError> {
        Err(ProbeError::ModeNotAvailable(Self::NAME))
    }

    fn mounts(&self, _: &mut Needs<'_>) {}
}

/// The peers agent `me` of `n` presses in round `round` when each agent takes at most
/// `limit` of them (kubenurse's neighbour limit): the `limit` agents after it in index order,
/// starting `round × limit` further on each round, wrapping, never itself. Every ordered
/// pair is covered within ⌈(n − 1) / limit⌉ consecutive rounds, each agent presses the same
/// number of peers and is pressed by as many. A limit of `n − 1` or more is the full mesh.
/// Pure and deterministic: every agent computes its own set, no list is shared.
pub fn neighbours(me: u32, n: u32, limit: u32, round: u64) -> Vec<u32> {
    if n < 2 || me >= n {
        return Vec::new();
    }
    let others = (n - 1) as u64;
    let limit = (limit as u64).min(others);
    let start = (round.wrapping_mul(limit)) % others;
    (0..limit)
        .map(|k| {
            // the k-th peer after `me`, skipping `me` itself: offsets 1..=n-1
            let offset = 1 + (start + k) % others;
            ((me as u64 + offset) % n as u64) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_covered_within_the_rounds_the_limit_needs() {
        for (n, limit) in [(2, 1), (5, 2), (10, 3), (17, 4), (100, 10), (7, 6), (7, 50)] {
            let rounds = (n as u64 - 1).div_ceil((limit as u64).min(n as u64 - 1));
            let mut seen = std::collections::BTreeSet::new();
            for r in 0..rounds {
                let mut pressed = vec![0u32; n as usize];
                for me in 0..n {
                    let peers = neighbours(me, n, limit, r);
                    assert_eq!(peers.len() as u32, limit.min(n - 1), "n {n} limit {limit}");
                    assert!(!peers.contains(&me), "never itself");
                    let distinct: std::collections::BTreeSet<_> = peers.iter().collect();
                    assert_eq!(distinct.len(), peers.len(), "no peer twice");
                    for p in peers {
                        pressed[p as usize] += 1;
                        seen.insert((me, p));
                    }
                }
                // as many agents press each one as each presses
                assert!(pressed.iter().all(|c| *c == limit.min(n - 1)), "n {n} limit {limit}: {pressed:?}");
            }
            assert_eq!(seen.len() as u32, n * (n - 1), "n {n} limit {limit}: every ordered pair in {rounds} rounds");
        }
    }

    #[test]
    fn rounds_rotate_and_repeat_deterministically() {
        assert_eq!(neighbours(0, 10, 3, 0), [1, 2, 3]);
        assert_eq!(neighbours(0, 10, 3, 1), [4, 5, 6]);
        assert_eq!(neighbours(0, 10, 3, 2), [7, 8, 9]);
        assert_eq!(neighbours(0, 10, 3, 3), [1, 2, 3]);
        assert_eq!(neighbours(8, 10, 3, 0), [9, 0, 1]);
        assert_eq!(neighbours(3, 4, 100, 7), [0, 1, 2], "a limit above the others is all of them");
        assert!(neighbours(0, 1, 3, 0).is_empty());
        assert!(neighbours(5, 4, 3, 0).is_empty());
    }
}
