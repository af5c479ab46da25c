//! What every agent of a mesh round presses, from where the agents can be reached: the
//! round's paths (each path the place offers, over each family the task enables) and each
//! live agent's orders (its aims: target node, path, URL). One pure function for every
//! place: loopback and network namespaces (`local`), and the launcher in a cluster.
//!
//! Rules: an agent presses every agent, itself included (kdoctor's), or with a neighbour
//! limit below the others its [`super::neighbours`] this round; `clusterIP` is one address
//! for all, so its cell is the agent's own row towards the Service (drawn on the diagonal);
//! a node without an address in a family neither presses nor is pressed in it, and is said
//! to be skipped, not failed.

use std::net::SocketAddr;

use super::agent::{Aim, Orders};
use super::{Family, Peers, Via};
use crate::judge::matrix::PathName;

/// Where one node's agent answers, per path, by family (`[IPv4, IPv6]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub pod: [Option<SocketAddr>; 2],
    pub node_port: [Option<SocketAddr>; 2],
    pub multus: [Option<SocketAddr>; 2],
}

/// The agents' Service and Ingress, by family: one address for every agent behind them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    pub cluster_ip: [Option<SocketAddr>; 2],
    pub load_balancer: [Option<SocketAddr>; 2],
    /// The Ingress's addresses, its host (the `Host` sent) and its path.
    pub ingress: [Option<SocketAddr>; 2],
    pub ingress_host: Option<String>,
    pub ingress_path: String,
}

impl Service {
    /// Its address on path `v` (ClusterIP or LoadBalancer) in `f`.
    fn at(&self, v: Via, f: Family) -> Option<SocketAddr> {
        let by = match v {
            Via::ClusterIp => &self.cluster_ip,
            Via::LoadBalancer => &self.load_balancer,
            Via::Ingress => &self.ingress,
            Via::Pod | Via::NodePort | Via::Multus => return None,
        };
        by.get(slot(f)).copied().flatten()
    }
}

/// A family's place in the `[IPv4, IPv6]` pairs.
pub fn slot(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Reach {
    fn at(&self, v: Via, f: Family) -> Option<SocketAddr> {
        let by = match v {
            Via::Pod => &self.pod,
            Via::NodePort => &self.node_port,
            Via::Multus => &self.multus,
            Via::ClusterIp | Via::LoadBalancer | Via::Ingress => return None,
        };
        by.get(slot(f)).copied().flatten()
    }

    /// Whether the node has an address in `f` (its pod has one).
    pub fn has(&self, f: Family) -> bool {
        self.pod.get(slot(f)).is_some_and(Option::is_some)
    }
}

/// A round's paths and every live agent's orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundAims {
    pub paths: Vec<PathName>,
    pub orders: Vec<Orders>,
    /// Cells not pressed for want of an address, with why.
    pub skipped: Vec<String>,
}

/// The round's aims: `vias` and `families` as the place offers them and the task enables
/// them, `nodes` by index with where each answers, `live` the agents that run. Pure.
pub fn plan(
    vias: &[Via],
    families: &[Family],
    peers: Peers,
    round: u64,
    nodes: &[(String, Reach)],
    service: &Service,
    live: impl Fn(u32) -> bool,
) -> RoundAims {
    let p = Planner::new(vias, families, peers, round, nodes, service, &live);
    let orders = (0..nodes.len() as u32).filter(|i| live(*i)).map(|i| p.orders(i)).collect();
    RoundAims {
        paths: p.paths,
        orders,
        skipped: p.skipped,
    }
}

/// A round's paths and what it cannot press, with each agent's orders made on demand (a
/// launcher of 1,000 agents holds a few agents' orders at a time, not 3 million aims).
pub struct Planner<'a> {
    pub paths: Vec<PathName>,
    /// Cells not pressed for want of an address, with why.
    pub skipped: Vec<String>,
    index: Vec<(Via, Family, u16)>,
    peers: Peers,
    round: u64,
    nodes: &'a [(String, Reach)],
    service: &'a Service,
    node_names: Vec<String>,
}

impl<'a> Planner<'a> {
    /// As [`plan`] takes them. Pure.
    pub fn new(
        vias: &[Via],
        families: &[Family],
        peers: Peers,
        round: u64,
        nodes: &'a [(String, Reach)],
        service: &'a Service,
        live: &dyn Fn(u32) -> bool,
    ) -> Planner<'a> {
        let mut paths = Vec::new();
        let mut index = Vec::new();
        for v in vias {
            for f in families {
                index.push((*v, *f, paths.len() as u16));
                paths.push(PathName {
                    path: v.name().into(),
                    family: f.name().into(),
                });
            }
        }
        let mut skipped = Vec::new();
        for f in families {
            // (an agent that does not run is named as silent by the judge, not here)
            for (i, (name, r)) in nodes.iter().enumerate() {
                if live(i as u32) && !r.has(*f) {
                    skipped.push(format!("{} to and from {name}: it has no {} address", f.name(), f.label()));
                }
            }
        }
        Planner {
            paths,
            skipped,
            index,
            peers,
            round,
            nodes,
            service,
            node_names: nodes.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    /// Agent `i`'s orders. Pure.
    pub fn orders(&self, i: u32) -> Orders {
        let n = self.nodes.len() as u32;
        let service = self.service;
        let pressed = pressed(self.peers, i, n, self.round);
        let mut aims = Vec::new();
        let me = self.nodes.get(i as usize).map(|(_, r)| r);
        for (v, f, path) in &self.index {
            if !me.is_some_and(|r| r.has(*f)) {
                continue;
            }
            if matches!(v, Via::ClusterIp | Via::LoadBalancer | Via::Ingress) {
                if let Some(addr) = service.at(*v, *f) {
                    let ingress = *v == Via::Ingress;
                    aims.push(Aim {
                        target: i,
                        path: *path,
                        url: match ingress {
                            true => format!("http://{addr}{}", service.ingress_path),
                            false => format!("http://{addr}/"),
                        },
                        host: service.ingress_host.clone().filter(|_| ingress),
                    });
                }
                continue;
            }
            for j in &pressed {
                let Some((_, them)) = self.nodes.get(*j as usize) else { continue };
                if let Some(addr) = them.at(*v, *f) {
                    aims.push(Aim {
                        target: *j,
                        path: *path,
                        url: format!("http://{addr}/"),
                        host: None,
                    });
                }
            }
        }
        Orders {
            source: i,
            nodes: self.node_names.clone(),
            paths: self.paths.clone(),
            aims,
        }
    }
}

/// The agents agent `i` of `n` presses this round: all of them (itself too, as kdoctor's do),
/// or its neighbours when a limit below the others bounds the mesh.
pub fn pressed(peers: Peers, i: u32, n: u32, round: u64) -> Vec<u32> {
    match peers {
        Peers::Limit(k) if k < n.saturating_sub(1) => super::neighbours(i, n, k, round),
        _ => (0..n).collect(),
    }
}

/// What a round with neighbour limit `peers` covered, for the report; `None` for the full mesh.
pub fn coverage(peers: Peers, n: u32, round: u64) -> Option<String> {
    match peers {
        Peers::Limit(k) if k < n.saturating_sub(1) => {
            let rounds = u64::from(n - 1).div_ceil(u64::from(k.max(1)));
            Some(format!(
                "each agent pressed {k} of its {} peers (round {round}: the {k} after it, {k} further on each round); every pair is covered within {rounds} rounds",
                n - 1
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, 1], port)))
    }

    fn nodes(n: u16, v6: bool) -> Vec<(String, Reach)> {
        (0..n)
            .map(|i| {
                let v6 = v6.then(|| SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, i + 1], 80)));
                (
                    format!("node-{i}"),
                    Reach {
                        pod: [at(1000 + i), v6],
                        node_port: [at(2000 + i), None],
                        multus: [None, None],
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_agent_presses_every_node_over_every_path_it_has() {
        let service = Service {
            cluster_ip: [at(80), None],
            ..Default::default()
        };
        let r = plan(
            &[Via::Pod, Via::ClusterIp, Via::NodePort],
            &[Family::V4],
            Peers::All,
            0,
            &nodes(3, false),
            &service,
            |_| true,
        );
        assert_eq!(
            r.paths.iter().map(|p| format!("{} {}", p.path, p.family)).collect::<Vec<_>>(),
            ["pod ipv4", "clusterIP ipv4", "nodePort ipv4"]
        );
        assert_eq!(r.orders.len(), 3);
        let o = &r.orders[1];
        assert_eq!(o.source, 1);
        // 3 pods, the Service once (on the diagonal), 3 NodePorts
        assert_eq!(o.aims.len(), 7, "{o:?}");
        assert!(o.aims.contains(&Aim {
            target: 1,
            path: 1,
            url: "http://10.0.0.1:80/".into(),
            host: None,
        }));
        assert!(o.aims.contains(&Aim {
            target: 2,
            path: 2,
            url: "http://10.0.0.1:2002/".into(),
            host: None,
        }));
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn a_load_balancer_is_one_address_for_all_pressed_on_the_diagonal() {
        let service = Service {
            load_balancer: [at(81), None],
            ..Default::default()
        };
        let r = plan(&[Via::LoadBalancer], &[Family::V4], Peers::All, 0, &nodes(3, false), &service, |_| true);
        for o in &r.orders {
            assert_eq!(
                o.aims,
                [Aim {
                    target: o.source,
                    path: 0,
                    url: format!("http://{}/", at(81).unwrap()),
                    host: None,
                }]
            );
        }
    }

    #[test]
    fn a_node_without_a_family_is_skipped_and_the_dead_press_nothing() {
        let mut n = nodes(3, true);
        n[2].1.pod[1] = None;
        let r = plan(&[Via::Pod], &[Family::V4, Family::V6], Peers::All, 0, &n, &Service::default(), |i| i != 1);
        assert_eq!(r.skipped, ["ipv6 to and from node-2: it has no IPv6 address"]);
        assert_eq!(r.orders.iter().map(|o| o.source).collect::<Vec<_>>(), [0, 2], "agent 1 is down");
        // node 0: 3 over IPv4, 2 over IPv6 (not node 2); node 2: IPv4 only
        assert_eq!(r.orders[0].aims.len(), 5);
        assert_eq!(r.orders[1].aims.len(), 3);
    }

    #[test]
    fn a_neighbour_limit_presses_this_rounds_neighbours_only() {
        let r = plan(&[Via::Pod], &[Family::V4], Peers::Limit(2), 1, &nodes(5, false), &Service::default(), |_| true);
        let targets: Vec<u32> = r.orders[0].aims.iter().map(|a| a.target).collect();
        assert_eq!(targets, [3, 4], "round 1: two further on");
        assert_eq!(
            coverage(Peers::Limit(2), 5, 1).unwrap(),
            "each agent pressed 2 of its 4 peers (round 1: the 2 after it, 2 further on each round); every pair is covered within 2 rounds"
        );
        assert!(coverage(Peers::Limit(4), 5, 0).is_none(), "a limit at the others is all");
    }
}
