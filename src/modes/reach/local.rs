//! A mesh round on one machine (`kpatrol run` of a mesh task): N agents, each serving
//! kpatrol's HTTP target and pressing every peer over every path the task enables at the
//! task's rate, with the HTTP mode's attempt; the servers stay up until every agent is done,
//! then the cells go to the matrix judge.
//!
//! Two places: loopback (the default): agent `i` on 127.0.0.(2+i) and on ::1, each on a port
//! of its own, the pod path only (the other paths need a cluster or `--netns`, and are
//! skipped and said so); or `--netns` ([`super::netns`]): each agent a node in a network
//! namespace of its own, where pod, ClusterIP, NodePort and Multus are different real paths.
//! With `--netns` each agent presses from a thread of its own in its node's namespace, so its
//! sockets are that node's; on loopback the agents are tasks of one runtime.
//!
//! `--impair` rehearses a node gone bad: `AGENT=down` (neither serves, presses nor reports:
//! its column fails and its row is missing); with `--netns` also `loss:PCT`, `PATH:down`,
//! `PATH:loss:PCT` and `no-ipv6`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use tokio::net::TcpListener;

use super::agent::{Aim, Row, press};
use super::netns::{self, Addr, Impairment, Network};
pub use crate::report::mesh::MeshReport;
use crate::report::mesh::{Place, Round};
use super::{Family, ReachPlan, Via, aims};
use crate::judge::matrix::{Matrix, PathName};
use crate::plan::Plan;
use crate::pressure::Stop;
use crate::probe::{Mounts, ProbeError, SetupError};

/// A local mesh runs one round, the first of the neighbour rotation.
const ROUND: u64 = 0;

/// The agents of a local mesh when `--agents` is not given.
pub const DEFAULT_AGENTS: u32 = 4;
/// The most agents a local mesh runs (each presses every other: N² targets).
pub const MAX_AGENTS: u32 = 64;

/// How a local mesh runs: how many agents, where, and which are impaired.
#[derive(Clone, Debug, Default)]
pub struct Local {
    pub agents: u32,
    /// Each agent a node in a network namespace of its own.
    pub netns: bool,
    /// Per agent, what goes wrong with it on purpose (`--impair`).
    pub impaired: Vec<Vec<Impairment>>,
}

/// Why `--impair` cannot be taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImpairError {
    #[error(
        "--impair {0}: expected AGENT=down, AGENT=loss:PCT, AGENT=PATH:down, AGENT=PATH:loss:PCT or AGENT=no-ipv6 (AGENT an agent's index from 0, PATH one of pod, clusterIP, nodePort, multus)"
    )]
    Form(String),
    #[error("--impair {given}: there are {agents} agents, 0 to {last}", last = .agents - 1)]
    NoSuchAgent { given: String, agents: u32 },
    #[error("--impair {0}: only `down` can be rehearsed on loopback (loss, a path and no-ipv6 need --netns)")]
    Kind(String),
    #[error("--impair {0}: a loss is a whole percentage from 1 to 100")]
    Percent(String),
}

impl Local {
    /// `--agents`, `--netns` and `--impair` as given.
    pub fn from_flags(agents: Option<u32>, netns: bool, impair: &[String]) -> Result<Local, ImpairError> {
        let agents = agents.unwrap_or(DEFAULT_AGENTS);
        let mut impaired = vec![Vec::new(); agents as usize];
        for given in impair {
            let form = || ImpairError::Form(given.clone());
            let (agent, how) = given.split_once('=').ok_or_else(form)?;
            let n: u32 = agent.trim().parse().map_err(|_| form())?;
            let slot = impaired.get_mut(n as usize).ok_or_else(|| ImpairError::NoSuchAgent {
                given: given.clone(),
                agents,
            })?;
            let percent = |p: &str| -> Result<u8, ImpairError> {
                p.trim()
                    .trim_end_matches('%')
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| ImpairError::Percent(given.clone()))
            };
            let parts: Vec<&str> = how.trim().split(':').collect();
            let imp = match parts.as_slice() {
                ["down"] => Impairment::Down,
                ["no-ipv6"] => Impairment::NoIpv6,
                ["loss", p] => Impairment::Loss {
                    via: None,
                    percent: percent(p)?,
                },
                [path, "down"] => Impairment::PathDown(Via::from_name(path).ok_or_else(form)?),
                [path, "loss", p] => Impairment::Loss {
                    via: Some(Via::from_name(path).ok_or_else(form)?),
                    percent: percent(p)?,
                },
                _ => return Err(form()),
            };
            if !netns && imp != Impairment::Down {
                return Err(ImpairError::Kind(given.clone()));
            }
            slot.push(imp);
        }
        Ok(Local {
            agents,
            netns,
            impaired,
        })
    }

    /// Whether agent `i` runs.
    fn up(&self, i: u32) -> bool {
        !self.impaired.get(i as usize).is_some_and(|v| v.contains(&Impairment::Down))
    }
}

/// The node name of agent `i` in a local mesh.
pub fn agent_name(i: u32) -> String {
    format!("agent-{i}")
}

/// One agent that runs: its index, its node's namespace, what it presses.
struct Agent {
    index: u32,
    netns: Option<PathBuf>,
    aims: Vec<Aim>,
}

/// Where the agents of a round are and what they press.
struct Layout {
    paths: Vec<PathName>,
    skipped: Vec<String>,
    /// Every live agent's listening sockets.
    listeners: Vec<TcpListener>,
    agents: Vec<Agent>,
    /// The network namespaces, deleted when this is dropped.
    network: Option<netns::Created>,
}


fn mesh_error(problem: String) -> ProbeError {
    SetupError::Invalid(problem).of("mesh")
}

fn socket_error(what: String, source: std::io::Error) -> ProbeError {
    SetupError::Socket { what, source }.of("mesh")
}

/// On loopback: agent `i` on 127.0.0.(2+i) and ::1, each on a port of its own; the pod path.
fn loopback(reach: &ReachPlan, local: &Local) -> Result<Layout, ProbeError> {
    let mut skipped = Vec::new();
    for (on, path) in [
        (reach.cluster_ip, "clusterIP: needs --netns or a cluster"),
        (reach.node_port, "nodePort: needs --netns or a cluster"),
        (reach.load_balancer, "loadBalancer: needs a cluster"),
        (reach.ingress, "ingress: needs a cluster"),
        (reach.multus_interface, "multus: needs --netns or a cluster"),
    ] {
        if on {
            skipped.push(path.to_string());
        }
    }
    let families = reach.families();
    if !reach.endpoint || families.is_empty() {
        return Err(mesh_error(
            "nothing to press on loopback: a local mesh takes the pod path (endpoint) over IPv4 or IPv6; with --netns also clusterIP, nodePort and multusInterface".into(),
        ));
    }
    let n = local.agents;
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let mut at = aims::Reach::default();
        for family in &families {
            let ip = match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8)),
                Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            let addr = if local.up(i) {
                let listener = crate::probe::serve::listen(SocketAddr::new(ip, 0))
                    .map_err(|e| socket_error(format!("agent {i} listening on {ip}"), e))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| socket_error(format!("agent {i}'s address"), e))?;
                listeners.push(listener);
                addr
            } else {
                // a port nobody listens on (bound, then released)
                std::net::TcpListener::bind(SocketAddr::new(ip, 0))
                    .and_then(|l| l.local_addr())
                    .map_err(|e| socket_error(format!("agent {i}'s address"), e))?
            };
            if let Some(slot) = at.pod.get_mut(usize::from(*family == Family::V6)) {
                *slot = Some(addr);
            }
        }
        nodes.push((agent_name(i), at));
    }
    let planned = aims::plan(
        &[Via::Pod],
        &families,
        reach.peers,
        ROUND,
        &nodes,
        &aims::Service::default(),
        |i| local.up(i),
    );
    skipped.extend(planned.skipped);
    Ok(Layout {
        paths: planned.paths,
        skipped,
        listeners,
        agents: planned
            .orders
            .into_iter()
            .map(|o| Agent {
                index: o.source,
                netns: None,
                aims: o.aims,
            })
            .collect(),
        network: None,
    })
}

/// In network namespaces: every agent a node, every enabled path a real path.
async fn in_netns(reach: &ReachPlan, local: &Local) -> Result<Layout, ProbeError> {
    let mut skipped = Vec::new();
    for (on, path) in [
        (reach.load_balancer, "loadBalancer: needs a cluster"),
        (reach.ingress, "ingress: needs a cluster"),
    ] {
        if on {
            skipped.push(path.to_string());
        }
    }
    let families = reach.families();
    let vias: Vec<Via> = [
        (reach.endpoint, Via::Pod),
        (reach.cluster_ip, Via::ClusterIp),
        (reach.node_port, Via::NodePort),
        (reach.endpoint && reach.multus_interface, Via::Multus),
    ]
    .into_iter()
    .filter_map(|(on, v)| on.then_some(v))
    .collect();
    if vias.is_empty() || families.is_empty() {
        return Err(mesh_error(
            "nothing to press: the task enables none of endpoint, clusterIP, nodePort over IPv4 or IPv6".into(),
        ));
    }
    let n = local.agents;
    let network = Network::plan(n, vias.contains(&Via::Multus), local.impaired.clone());
    let created = tokio::task::spawn_blocking(move || network.create())
        .await
        .map_err(|e| mesh_error(format!("--netns: {e}")))?
        .map_err(|e| mesh_error(e.to_string()))?;
    let network = &created.network;
    // each live node's server on the agents' port, IPv4 and IPv6 on one socket, opened in
    // its namespace
    let handle = tokio::runtime::Handle::current();
    let mut listeners = Vec::new();
    for i in (0..n).filter(|i| network.up(*i)) {
        let path = network.node_path(i);
        let opened = std::thread::scope(|s| {
            s.spawn(|| -> Result<TcpListener, ProbeError> {
                netns::enter(&path).map_err(|e| mesh_error(e.to_string()))?;
                let _runtime = handle.enter();
                let port = netns::AGENT_PORT;
                crate::probe::serve::listen(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
                    .or_else(|_| crate::probe::serve::listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)))
                    .map_err(|e| socket_error(format!("{} listening on port {port}", agent_name(i)), e))
            })
            .join()
        });
        listeners.push(opened.map_err(|_| mesh_error(format!("{}: its server did not start", agent_name(i))))??);
    }
    let on = |f: Family, a: Addr, i: u32, port: u16| {
        network
            .has_family(i, f)
            .then(|| SocketAddr::new(netns::address(a, i, f), port))
    };
    let nodes: Vec<(String, aims::Reach)> = (0..n)
        .map(|i| {
            let both = |a: Addr, port: u16| [on(Family::V4, a, i, port), on(Family::V6, a, i, port)];
            let at = aims::Reach {
                pod: both(Addr::Pod, netns::AGENT_PORT),
                node_port: both(Addr::Node, netns::NODE_PORT),
                multus: if network.multus {
                    both(Addr::Multus, netns::AGENT_PORT)
                } else {
                    [None, None]
                },
            };
            (agent_name(i), at)
        })
        .collect();
    let service = aims::Service {
        cluster_ip: [Family::V4, Family::V6].map(|f| Some(SocketAddr::new(netns::cluster_ip(f), netns::AGENT_PORT))),
        ..Default::default()
    };
    let planned = aims::plan(&vias, &families, reach.peers, ROUND, &nodes, &service, |i| network.up(i));
    skipped.extend(planned.skipped);
    let agents = planned
        .orders
        .into_iter()
        .map(|o| Agent {
            index: o.source,
            netns: Some(network.node_path(o.source)),
            aims: o.aims,
        })
        .collect();
    Ok(Layout {
        paths: planned.paths,
        skipped,
        listeners,
        agents,
        network: Some(created),
    })
}

/// Presses `agent`'s aims with `plan`: on loopback as a task of the runtime, in a node's
/// namespace on a thread of its own that entered it (sockets are made in the namespace of
/// the thread that opens them). The row comes back on the channel, which closes unanswered
/// if the thread could not start.
fn spawn_agent(agent: &Agent, plan: Plan, mounts: Mounts, stop: Stop) -> tokio::sync::oneshot::Receiver<Result<Row, ProbeError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (index, aims) = (agent.index, agent.aims.clone());
    let Some(netns) = agent.netns.clone() else {
        tokio::spawn(async move {
            let _ = tx.send(press(&plan, index, &aims, &mounts, stop).await);
        });
        return rx;
    };
    let name = agent_name(index);
    let _ = std::thread::Builder::new().name(name.clone()).spawn(move || {
        let result = (|| {
            netns::enter(&netns).map_err(|e| mesh_error(e.to_string()))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| socket_error(format!("{name}'s runtime"), e))?;
            runtime.block_on(press(&plan, index, &aims, &mounts, stop))
        })();
        let _ = tx.send(result);
    });
    rx
}

/// Runs one mesh round of `plan` with `local`'s agents; `stop` ends it early.
pub async fn run(plan: &Plan, reach: &ReachPlan, local: &Local, mounts: &Mounts, stop: Stop) -> Result<MeshReport, ProbeError> {
    let started_at = std::time::SystemTime::now();
    let clock = tokio::time::Instant::now();
    let layout = if local.netns {
        in_netns(reach, local).await?
    } else {
        loopback(reach, local)?
    };
    let n = local.agents;
    let servers = Stop::new();
    let serving: Vec<_> = layout
        .listeners
        .into_iter()
        .map(|l| tokio::spawn(crate::probe::serve::serve(l, servers.clone())))
        .collect();
    let rounds: Vec<_> = layout
        .agents
        .iter()
        .map(|agent| (agent.index, spawn_agent(agent, plan.clone(), mounts.clone(), stop.clone())))
        .collect();
    let mut cells = Vec::new();
    let mut reported: Vec<bool> = (0..n).map(|i| local.up(i)).collect();
    let mut stopped = false;
    let mut first_error = None;
    for (i, rx) in rounds {
        match rx.await {
            Ok(Ok(row)) => {
                stopped |= row.stopped;
                cells.extend(row.cells);
            }
            other => {
                if let Some(r) = reported.get_mut(i as usize) {
                    *r = false;
                }
                if let Ok(Err(e)) = other {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    servers.stop();
    for t in serving {
        t.abort();
    }
    if let Some(created) = layout.network {
        // deleting the namespaces runs `ip`: off the runtime's threads
        let _ = tokio::task::spawn_blocking(move || drop(created)).await;
    }
    if cells.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    let matrix = Matrix {
        nodes: (0..n).map(agent_name).collect(),
        paths: layout.paths,
        reported,
        cells,
    };
    Ok(MeshReport::judged(
        plan,
        matrix,
        Round {
            agents: n,
            network: if local.netns { Place::Netns } else { Place::Loopback },
            skipped: layout.skipped,
            coverage: aims::coverage(reach.peers, n, ROUND),
            stopped,
            started_at,
            duration_seconds: clock.elapsed().as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_parse_or_say_what_is_wrong() {
        assert_eq!(Local::from_flags(None, false, &[]).unwrap().agents, DEFAULT_AGENTS);
        let l = Local::from_flags(Some(5), false, &["2=down".into()]).unwrap();
        assert!(!l.up(2) && l.up(1));
        assert_eq!(
            Local::from_flags(Some(3), false, &["3=down".into()]).unwrap_err().to_string(),
            "--impair 3=down: there are 3 agents, 0 to 2"
        );
        assert_eq!(
            Local::from_flags(Some(3), false, &["1=loss:20".into()]).unwrap_err(),
            ImpairError::Kind("1=loss:20".into())
        );
        assert_eq!(
            Local::from_flags(Some(3), false, &["x".into()]).unwrap_err(),
            ImpairError::Form("x".into())
        );
        let l = Local::from_flags(
            Some(3),
            true,
            &["1=loss:20".into(), "1=nodePort:down".into(), "2=multus:loss:5%".into(), "0=no-ipv6".into()],
        )
        .unwrap();
        assert_eq!(
            l.impaired[1],
            [
                Impairment::Loss {
                    via: None,
                    percent: 20
                },
                Impairment::PathDown(Via::NodePort)
            ]
        );
        assert_eq!(
            l.impaired[2],
            [Impairment::Loss {
                via: Some(Via::Multus),
                percent: 5
            }]
        );
        assert_eq!(l.impaired[0], [Impairment::NoIpv6]);
        for (bad, want) in [
            ("1=loss:0", ImpairError::Percent("1=loss:0".into())),
            ("1=loss:101", ImpairError::Percent("1=loss:101".into())),
            ("1=loadBalancer:down", ImpairError::Form("1=loadBalancer:down".into())),
            ("1=pod:up", ImpairError::Form("1=pod:up".into())),
        ] {
            assert_eq!(Local::from_flags(Some(3), true, &[bad.into()]).unwrap_err(), want);
        }
    }
}
