//! A mesh round on one machine (`kpatrol run` of a mesh task): N agents on loopback, each
//! serving kpatrol's HTTP target on an address of its own (127.0.0.2, 127.0.0.3, … for IPv4;
//! ::1 on a port of its own for IPv6) and pressing every peer over the pod path (kdoctor's
//! `endpoint`) at the task's rate, with the HTTP mode's attempt; the servers stay up until
//! every agent is done. The cells go to the matrix judge. Paths that need a cluster
//! (ClusterIP, NodePort, LoadBalancer, Ingress, Multus) are skipped and said so.
//!
//! `--impair AGENT=down` rehearses a node gone bad: that agent neither serves nor presses
//! nor reports, so its column fails and its row is missing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::ReachPlan;
use crate::judge::matrix::{Cell, CellExpect, Matrix, MatrixVerdict, PathName, judge_matrix};
use crate::judge::{Check, Outcome, successes};
use crate::modes::Mode;
use crate::modes::http::{Body, HttpPlan, HttpTarget, HttpVersion};
use crate::plan::{Plan, Tls};
use crate::pressure::Stop;
use crate::probe::{Mounts, ProbeError, SetupError};

/// The agents of a local mesh when `--agents` is not given.
pub const DEFAULT_AGENTS: u32 = 4;
/// The most agents a local mesh runs (each presses every other: N² targets).
pub const MAX_AGENTS: u32 = 64;

/// How a local mesh runs: how many agents, and which are impaired.
#[derive(Clone, Debug, Default)]
pub struct Local {
    pub agents: u32,
    /// Agents that neither serve, press nor report (`--impair AGENT=down`).
    pub down: Vec<u32>,
}

/// Why `--impair` cannot be taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImpairError {
    #[error("--impair {0}: expected AGENT=down, AGENT an agent's index from 0")]
    Form(String),
    #[error("--impair {given}: there are {agents} agents, 0 to {last}", last = .agents - 1)]
    NoSuchAgent { given: String, agents: u32 },
    #[error("--impair {0}: only `down` can be rehearsed on loopback (loss needs network namespaces)")]
    Kind(String),
}

impl Local {
    /// `--agents` and `--impair` as given.
    pub fn from_flags(agents: Option<u32>, impair: &[String]) -> Result<Local, ImpairError> {
        let agents = agents.unwrap_or(DEFAULT_AGENTS);
        let mut down = Vec::new();
        for i in impair {
            let (agent, how) = i.split_once('=').ok_or_else(|| ImpairError::Form(i.clone()))?;
            let n: u32 = agent.trim().parse().map_err(|_| ImpairError::Form(i.clone()))?;
            if n >= agents {
                return Err(ImpairError::NoSuchAgent {
                    given: i.clone(),
                    agents,
                });
            }
            if how.trim() != "down" {
                return Err(ImpairError::Kind(i.clone()));
            }
            down.push(n);
        }
        Ok(Local { agents, down })
    }
}

/// A local mesh round, judged.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshReport {
    pub task: String,
    pub kind: String,
    pub mode: &'static str,
    pub verdict: Outcome,
    pub agents: u32,
    pub cells: u64,
    pub failed_cells: u64,
    /// Failing cells past the listed checks.
    pub unlisted_cells: u64,
    /// The task's paths this run could not take, with why.
    pub skipped: Vec<String>,
    pub findings: Vec<String>,
    pub checks: Vec<Check>,
    pub stopped: bool,
    #[serde(skip)]
    pub matrix: Matrix,
    #[serde(skip)]
    pub verdict_detail: Option<MatrixVerdict>,
    #[serde(skip)]
    pub expect: CellExpect,
}

/// Agent `i`'s address in `family`: 127.0.0.(2+i), or ::1 (on a port of its own).
fn agent_ip(i: u32, family: &str) -> IpAddr {
    if family == "ipv4" {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8))
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    }
}

/// The node name of agent `i` in a local mesh.
pub fn agent_name(i: u32) -> String {
    format!("agent-{i}")
}

/// Runs one mesh round of `plan` on loopback with `local`'s agents; `stop` ends it early.
pub async fn run(plan: &Plan, reach: &ReachPlan, local: &Local, mounts: &Mounts, stop: Stop) -> Result<MeshReport, ProbeError> {
    let mut skipped = Vec::new();
    for (on, path) in [
        (reach.cluster_ip, "clusterIP"),
        (reach.node_port, "nodePort"),
        (reach.load_balancer, "loadBalancer"),
        (reach.ingress, "ingress"),
        (reach.multus_interface, "multus"),
    ] {
        if on {
            skipped.push(format!("{path}: needs a cluster"));
        }
    }
    let mut families = Vec::new();
    if reach.ipv4 {
        families.push("ipv4");
    }
    if reach.ipv6 {
        families.push("ipv6");
    }
    if !reach.endpoint || families.is_empty() {
        return Err(SetupError::Invalid(
            "nothing to press on loopback: a local mesh takes the pod path (endpoint) over IPv4 or IPv6".into(),
        )
        .of("mesh"));
    }
    let n = local.agents;
    // every live agent's servers, one per family
    let servers = Stop::new();
    let mut addrs: HashMap<(u32, usize), SocketAddr> = HashMap::new();
    let mut tasks = Vec::new();
    for i in (0..n).filter(|i| !local.down.contains(i)) {
        for (f, family) in families.iter().enumerate() {
            let ip = agent_ip(i, family);
            let listener = crate::probe::serve::listen(SocketAddr::new(ip, 0)).map_err(|source| {
                SetupError::Socket {
                    what: format!("agent {i} listening on {ip}"),
                    source,
                }
                .of("mesh")
            })?;
            let addr = listener.local_addr().map_err(|source| {
                SetupError::Socket {
                    what: format!("agent {i}'s address"),
                    source,
                }
                .of("mesh")
            })?;
            addrs.insert((i, f), addr);
            tasks.push(tokio::spawn(crate::probe::serve::serve(listener, servers.clone())));
        }
    }
    // an impaired agent's addresses: a port nobody listens on (bound, then released)
    for i in local.down.iter().copied() {
        for (f, family) in families.iter().enumerate() {
            let ip = agent_ip(i, family);
            let closed = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(|source| {
                    SetupError::Socket {
                        what: format!("agent {i}'s address"),
                        source,
                    }
                    .of("mesh")
                })?;
            addrs.insert((i, f), closed);
        }
    }
    let paths: Vec<PathName> = families
        .iter()
        .map(|f| PathName {
            path: "pod".into(),
            family: f.to_string(),
        })
        .collect();
    // each agent presses every agent (itself too, as kdoctor's do) over each family
    let mut expect = plan.expect.clone();
    expect.codes.clear(); // kdoctor: any response is a success
    let mut rounds = Vec::new();
    let mut index: HashMap<String, (u32, u16)> = HashMap::new();
    for i in (0..n).filter(|i| !local.down.contains(i)) {
        let mut targets = Vec::new();
        for j in 0..n {
            for (f, family) in families.iter().enumerate() {
                let name = format!("{} pod {family}", agent_name(j));
                index.insert(name.clone(), (j, f as u16));
                let Some(addr) = addrs.get(&(j, f)) else { continue };
                targets.push(HttpTarget {
                    name,
                    url: format!("http://{addr}/"),
                    method: "GET".into(),
                    headers: Vec::new(),
                    body: Body::None,
                    tls: Tls::default(),
                    version: HttpVersion::Http1,
                    redirects: 0,
                    expect: expect.clone(),
                });
            }
        }
        let mut agent = plan.clone();
        agent.mode = Mode::Http(HttpPlan { targets });
        let (stop, mounts) = (stop.clone(), mounts.clone());
        rounds.push(tokio::spawn(async move {
            let r = crate::round::execute_round(&agent, &mounts, stop, None).await;
            (i, r)
        }));
    }
    let mut cells = Vec::new();
    let mut reported = vec![true; n as usize];
    for d in &local.down {
        if let Some(r) = reported.get_mut(*d as usize) {
            *r = false;
        }
    }
    let mut stopped = false;
    let mut first_error = None;
    for r in rounds {
        let Ok((i, result)) = r.await else { continue };
        match result {
            Ok(f) => {
                stopped |= f.round.stopped;
                for t in &f.round.targets {
                    let Some((j, p)) = index.get(t.id.as_str()).copied() else { continue };
                    let s = &t.stats;
                    let summary = s.summary();
                    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                    cells.push(Cell {
                        source: i,
                        target: j,
                        path: p,
                        sent: u32::try_from(s.sent).unwrap_or(u32::MAX),
                        ok: u32::try_from(successes(&expect, s)).unwrap_or(u32::MAX),
                        mean_us: us(summary.mean),
                        p99_us: us(summary.p99),
                    });
                }
            }
            Err(e) => {
                if let Some(r) = reported.get_mut(i as usize) {
                    *r = false;
                }
                first_error.get_or_insert(e);
            }
        }
    }
    servers.stop();
    for t in tasks {
        t.abort();
    }
    if cells.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    let matrix = Matrix {
        nodes: (0..n).map(agent_name).collect(),
        paths,
        reported,
        cells,
    };
    let e = CellExpect {
        success_rate: plan.expect.success_rate,
        mean: plan.expect.latency.mean,
        p99: plan.expect.latency.p99,
        whole_ms: plan.expect.whole_ms,
    };
    let v = judge_matrix(&e, &matrix);
    let outcome = if stopped { Outcome::Fail } else { v.outcome };
    Ok(MeshReport {
        task: plan.name.clone(),
        kind: plan.kind.clone(),
        mode: "reach",
        verdict: outcome,
        agents: n,
        cells: v.cells,
        failed_cells: v.failed_cells,
        unlisted_cells: v.unlisted_cells,
        skipped,
        findings: v.findings.iter().map(crate::report::heatmap::finding_text).collect(),
        checks: v.checks.clone(),
        stopped,
        matrix,
        expect: e,
        verdict_detail: Some(v),
    })
}

impl MeshReport {
    /// The report as a table: the heatmap, what was skipped, the verdict.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} {} on loopback: {} agents, the pod path ({})\n",
            self.kind,
            self.task,
            self.agents,
            self.matrix.paths.iter().map(|p| p.family.as_str()).collect::<Vec<_>>().join(", ")
        );
        for s in &self.skipped {
            out.push_str(&format!("skipped {s}\n"));
        }
        out.push('\n');
        if let Some(v) = &self.verdict_detail {
            out.push_str(&crate::report::heatmap::heatmap(&self.matrix, &self.expect, v));
        }
        if self.stopped {
            out.push_str("stopped before the round's end\n");
        }
        out.push_str(if self.verdict == Outcome::Pass {
            "\nverdict: PASS\n"
        } else {
            "\nverdict: FAIL\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_parse_or_say_what_is_wrong() {
        assert_eq!(Local::from_flags(None, &[]).unwrap().agents, DEFAULT_AGENTS);
        assert_eq!(Local::from_flags(Some(5), &["2=down".into()]).unwrap().down, [2]);
        assert_eq!(
            Local::from_flags(Some(3), &["3=down".into()]).unwrap_err().to_string(),
            "--impair 3=down: there are 3 agents, 0 to 2"
        );
        assert_eq!(
            Local::from_flags(Some(3), &["1=loss:20".into()]).unwrap_err(),
            ImpairError::Kind("1=loss:20".into())
        );
        assert_eq!(Local::from_flags(Some(3), &["x".into()]).unwrap_err(), ImpairError::Form("x".into()));
    }
}
