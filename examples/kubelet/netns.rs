//! `--netns`: each node of this kubelet is a network namespace of its own, made by kpatrol's
//! own local-mesh network (`kpatrol::modes::reach::netns`: veth pairs to bridges in one more
//! namespace, 198.18.0.0/15 and fd6b:7061::/48 inside, the host's network untouched). Node
//! `i` answers on 198.18.0.(10+i) (its InternalIP); its pods run in its namespace and share
//! its pod addresses 198.18.1.(10+i) and fd6b:7061::b:(10+i).
//!
//! What pods in a node's namespace need of the host is brought in without touching the host's
//! network: the API server through a forwarder (a socket listening on the API server's own
//! loopback address and port inside each namespace, its connections relayed to the real one),
//! so a pod's kubeconfig works unchanged.
//!
//! And kube-proxy's part, for IPv4: every Service with a selector gets nftables DNAT rules in
//! every node (table `ip kproxy`, replaced whole on each change): its ClusterIP and its
//! load-balancer address to one of its endpoints at random, its NodePort on each node's
//! address to that node's own endpoints (`externalTrafficPolicy: Local`) or to any. A
//! Service of type LoadBalancer gets an address from 198.18.254.0/24 in its status, as a
//! bare-metal load balancer (MetalLB) gives one. Endpoints are the Running pods of this kubelet
//! whose labels the selector matches; a named target port is looked up in their containers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kpatrol::modes::reach::Family;
use kpatrol::modes::reach::netns::{Addr, Created, Network, address};
use kube::api::Api;

use crate::Ctx;

/// This kubelet's network and what its proxy knows.
pub struct Net {
    network: Network,
    created: Mutex<Option<Created>>,
    proxy: Mutex<Proxy>,
}

/// What the proxy's rules are made of.
#[derive(Default)]
struct Proxy {
    /// Services by namespace/name.
    services: BTreeMap<String, Service>,
    /// Running pods by uid: where they are and what they offer.
    endpoints: BTreeMap<String, Endpoint>,
    /// The rulesets loaded, by node.
    loaded: Vec<String>,
    /// Load-balancer addresses given.
    lb_given: u32,
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub node: u32,
    /// Container ports by name.
    pub ports: BTreeMap<String, u16>,
}

impl Endpoint {
    pub fn of(pod: &Pod, node: u32) -> Endpoint {
        let ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
            .collect();
        Endpoint {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node,
            ports,
        }
    }
}

impl Net {
    /// Makes the namespaces of `nodes` nodes (deleted when the kubelet exits).
    pub fn create(nodes: u32) -> anyhow::Result<Net> {
        let mut network = Network::plan(nodes, false, vec![Vec::new(); nodes as usize]);
        // the Services' rules are this kubelet's to write
        network.services = false;
        let created = network.clone().create().context("--netns")?;
        // a node routes what is not on its link out of eth0, as a node has a default route:
        // a ClusterIP is DNATed only after the route is found (and what no rule takes goes
        // no further than the bridge)
        for i in 0..nodes {
            for family in ["-4", "-6"] {
                let ns = network.node_netns(i);
                let out = std::process::Command::new("ip")
                    .args([family, "-n", &ns, "route", "add", "default", "dev", "eth0"])
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "the default route of {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(Net {
            network,
            created: Mutex::new(Some(created)),
            proxy: Mutex::new(Proxy {
                loaded: vec![String::new(); nodes as usize],
                ..Default::default()
            }),
        })
    }

    /// Deletes the namespaces (at exit).
    pub fn remove(&self) {
        drop(self.created.lock().unwrap_or_else(PoisonError::into_inner).take());
    }

    /// Node `i`'s namespace, to enter.
    pub fn node_path(&self, i: u32) -> std::path::PathBuf {
        self.network.node_path(i)
    }

    /// Node `i`'s name for `ip netns`.
    pub fn node_netns(&self, i: u32) -> String {
        self.network.node_netns(i)
    }

    /// Node `i`'s InternalIP.
    pub fn node_ip(i: u32) -> IpAddr {
        address(Addr::Node, i, Family::V4)
    }

    /// The addresses of node `i`'s pods.
    pub fn pod_ips(i: u32) -> Vec<IpAddr> {
        vec![address(Addr::Pod, i, Family::V4), address(Addr::Pod, i, Family::V6)]
    }

    /// In each node's namespace, a listener on the API server's address and port whose
    /// connections are relayed to the API server.
    pub async fn forward_api(&self, host: &str, port: u16) -> anyhow::Result<()> {
        let ip: IpAddr = host
            .parse()
            .with_context(|| format!("--netns needs the API server at an IP address, not {host}"))?;
        let addr = std::net::SocketAddr::new(ip, port);
        for i in 0..self.network.nodes {
            let path = self.node_path(i);
            // a socket keeps the namespace it was made in: bind it from a thread inside
            let listener = std::thread::spawn(move || -> anyhow::Result<std::net::TcpListener> {
                kpatrol::modes::reach::netns::enter(&path)?;
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the forwarder's thread panicked"))??;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(async move {
                loop {
                    let Ok((mut inside, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let Ok(Ok(mut outside)) = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            tokio::net::TcpStream::connect(addr),
                        )
                        .await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    });
                }
            });
        }
        Ok(())
    }

    /// A pod of this kubelet runs (`Some`) or no longer does (`None`): the rules follow.
    pub fn endpoint(&self, uid: &str, ep: Option<Endpoint>) {
        let mut p = self.proxy.lock().unwrap_or_else(PoisonError::into_inner);
        match ep {
            Some(ep) => p.endpoints.insert(uid.to_string(), ep),
            None => p.endpoints.remove(uid),
        };
        self.reload(&mut p);
    }

    fn reload(&self, p: &mut Proxy) {
        for i in 0..self.network.nodes {
            let rules = ruleset(i, &p.services, &p.endpoints);
            let Some(loaded) = p.loaded.get_mut(i as usize) else {
                continue;
            };
            if *loaded == rules {
                continue;
            }
            let ns = self.node_netns(i);
            // replaced whole: the table made (if missing), deleted, and written again
            let text = format!("table ip kproxy {{}}\ndelete table ip kproxy\n{rules}");
            match nft(&ns, &text) {
                Ok(()) => *loaded = rules,
                Err(e) => crate::log(format_args!("node {i}: proxy rules not loaded: {e}\n{text}")),
            }
        }
    }
}

fn nft(ns: &str, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Node `i`'s proxy rules for `services` over `endpoints`. Pure.
pub fn ruleset(i: u32, services: &BTreeMap<String, Service>, endpoints: &BTreeMap<String, Endpoint>) -> String {
    let mut out_rules = String::new();
    let mut pre_rules = String::new();
    let v4 = |ip: &str| ip.parse::<std::net::Ipv4Addr>().ok();
    for svc in services.values() {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let namespace = svc.metadata.namespace.clone().unwrap_or_default();
        let chosen: Vec<&Endpoint> = endpoints
            .values()
            .filter(|e| e.namespace == namespace && selector.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .collect();
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            // each endpoint's address and port
            let backends = |only: Option<u32>| -> Vec<String> {
                chosen
                    .iter()
                    .filter(|e| only.is_none_or(|n| e.node == n))
                    .filter_map(|e| {
                        let target = match &port.target_port {
                            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)) => {
                                u16::try_from(*p).ok()
                            }
                            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n)) => {
                                e.ports.get(n).copied()
                            }
                            None => u16::try_from(port.port).ok(),
                        }?;
                        Some(format!("{} . {target}", address(Addr::Pod, e.node, Family::V4)))
                    })
                    .collect()
            };
            let dnat = |list: &[String]| {
                let map: Vec<String> = list.iter().enumerate().map(|(k, b)| format!("{k} : {b}")).collect();
                format!(
                    "dnat ip to numgen random mod {} map {{ {} }}",
                    list.len(),
                    map.join(", ")
                )
            };
            let all = backends(None);
            if all.is_empty() {
                continue;
            }
            if let Some(cip) = spec.cluster_ip.as_deref().and_then(v4) {
                let _ = writeln!(out_rules, "    ip daddr {cip} tcp dport {} {}", port.port, dnat(&all));
            }
            let lb = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
            for ip in lb
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref().and_then(v4))
            {
                let rule = format!("    ip daddr {ip} tcp dport {} {}\n", port.port, dnat(&all));
                out_rules.push_str(&rule);
                pre_rules.push_str(&rule);
            }
            if let Some(np) = port.node_port {
                let list = if local { backends(Some(i)) } else { all.clone() };
                if !list.is_empty() {
                    let rule = format!("    ip daddr {} tcp dport {np} {}\n", Net::node_ip(i), dnat(&list));
                    pre_rules.push_str(&rule);
                    out_rules.push_str(&rule);
                }
            }
        }
    }
    let mut text = String::from("table ip kproxy {\n");
    for (name, hook, rules) in [
        ("output", "type nat hook output priority -100", &out_rules),
        ("prerouting", "type nat hook prerouting priority -100", &pre_rules),
    ] {
        let _ = write!(text, "  chain {name} {{\n    {hook};\n{rules}  }}\n");
    }
    text.push_str("}\n");
    text
}

/// Follows every Service (a list, then a watch; listed again when the watch fails),
/// reloading the rules on each change.
pub async fn watch_services(ctx: Arc<Ctx>, net: Arc<Net>) {
    use kube::api::{ListParams, WatchEvent, WatchParams};
    let api: Api<Service> = Api::all(ctx.client.clone());
    let key = |s: &Service| {
        format!(
            "{}/{}",
            s.metadata.namespace.as_deref().unwrap_or_default(),
            s.metadata.name.as_deref().unwrap_or_default()
        )
    };
    loop {
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                crate::log(format_args!("services: list failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        {
            let mut p = net.proxy.lock().unwrap_or_else(PoisonError::into_inner);
            p.services = list.items.into_iter().map(|s| (key(&s), s)).collect();
            net.reload(&mut p);
        }
        let wp = WatchParams::default().timeout(60);
        let Ok(stream) = api.watch(&wp, &rv).await else {
            continue;
        };
        let mut stream = stream.boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let mut p = net.proxy.lock().unwrap_or_else(PoisonError::into_inner);
            match ev {
                WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                    rv = s.metadata.resource_version.clone().unwrap_or(rv);
                    if let Some(ip) = wants_lb(&s).then(|| {
                        p.lb_given += 1;
                        std::net::Ipv4Addr::new(198, 18, 254, (p.lb_given % 250 + 1) as u8)
                    }) {
                        tokio::spawn(give_lb(ctx.clone(), s.clone(), ip));
                    }
                    p.services.insert(key(&s), s);
                }
                WatchEvent::Deleted(s) => {
                    p.services.remove(&key(&s));
                }
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(_) => break,
            }
            net.reload(&mut p);
        }
        let _ = rv;
    }
}

/// A Service of type LoadBalancer without an address yet.
fn wants_lb(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && s.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_none_or(Vec::is_empty)
}

/// Writes `ip` as Service `s`'s load-balancer address (its status).
async fn give_lb(ctx: Arc<Ctx>, s: Service, ip: std::net::Ipv4Addr) {
    let (Some(ns), Some(name)) = (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) else {
        return;
    };
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
    match api
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => crate::log(format_args!("service {ns}/{name}: load balancer {ip}")),
        Err(e) => crate::log(format_args!("service {ns}/{name}: load balancer not given: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_goes_to_its_endpoints_and_a_local_node_port_to_the_nodes_own() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "mesh", "namespace": "a"},
            "spec": {"clusterIP": "10.0.0.7", "selector": {"app": "x"}, "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": "mesh", "nodePort": 31000, "protocol": "TCP"}]},
        }))
        .unwrap();
        let ep = |node, ns: &str, app: &str| Endpoint {
            namespace: ns.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            node,
            ports: BTreeMap::from([("mesh".to_string(), 8080)]),
        };
        let services = BTreeMap::from([("a/mesh".to_string(), svc)]);
        let endpoints = BTreeMap::from([
            ("u0".to_string(), ep(0, "a", "x")),
            ("u1".to_string(), ep(1, "a", "x")),
            ("u2".to_string(), ep(2, "b", "x")),
            ("u3".to_string(), ep(2, "a", "y")),
        ]);
        let r = ruleset(1, &services, &endpoints);
        assert!(
            r.contains("ip daddr 10.0.0.7 tcp dport 80 dnat ip to numgen random mod 2 map { 0 : 198.18.1.10 . 8080, 1 : 198.18.1.11 . 8080 }"),
            "{r}"
        );
        assert!(
            r.contains(
                "ip daddr 198.18.0.11 tcp dport 31000 dnat ip to numgen random mod 1 map { 0 : 198.18.1.11 . 8080 }"
            ),
            "{r}"
        );
        // node 2 has no endpoint of its own: its NodePort has no rule
        assert!(!ruleset(2, &services, &endpoints).contains("31000"));
    }
}
