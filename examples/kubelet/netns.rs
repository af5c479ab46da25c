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
use k8s_openapi::api::networking::v1::Ingress;
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
    /// Ingresses by namespace/name.
    ingresses: BTreeMap<String, Ingress>,
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
        // a second interface per node (eth1, 198.19.0.0/16 and fd6b:7061:0:1::/64) for pods
        // that ask Multus for one
        let mut network = Network::plan(nodes, true, vec![Vec::new(); nodes as usize]);
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

    /// The Multus `network-status` of a pod on node `i` that asked for `networks` (the
    /// annotation `k8s.v1.cni.cncf.io/networks`): its default interface and the node's second.
    pub fn network_status(i: u32, networks: &str) -> String {
        let ips = |a: Addr| [Family::V4, Family::V6].map(|f| address(a, i, f).to_string()).to_vec();
        serde_json::json!([
            {"name": "kpatrol-netns", "interface": "eth0", "ips": ips(Addr::Pod), "default": true},
            {"name": networks.split(',').next().unwrap_or(networks).trim(), "interface": "eth1", "ips": ips(Addr::Multus)},
        ])
        .to_string()
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
            let rules = ruleset(i, &p.services, &p.endpoints, !p.ingresses.is_empty());
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

/// Node `i`'s proxy rules for `services` over `endpoints`, and to the ingress controller
/// when there are `ingresses`. Pure.
pub fn ruleset(
    i: u32,
    services: &BTreeMap<String, Service>,
    endpoints: &BTreeMap<String, Endpoint>,
    ingresses: bool,
) -> String {
    let mut out_rules = String::new();
    let mut pre_rules = String::new();
    if ingresses {
        let rule = format!(
            "    ip daddr {INGRESS_IP} tcp dport 80 dnat ip to {}:80\n",
            address(Addr::Pod, 0, Family::V4)
        );
        out_rules.push_str(&rule);
        pre_rules.push_str(&rule);
    }
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
/// reloading the rules on each change; a LoadBalancer gets an address of its own.
pub async fn watch_services(ctx: Arc<Ctx>, net: Arc<Net>) {
    follow::<Service>(
        ctx,
        net,
        |p| &mut p.services,
        |s, p| {
            let lb = s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
            let given = s.status.as_ref().and_then(|s| s.load_balancer.as_ref());
            let has = given.and_then(|l| l.ingress.as_ref()).is_some_and(|v| !v.is_empty());
            (lb && !has).then(|| {
                p.lb_given += 1;
                std::net::Ipv4Addr::new(198, 18, 254, (p.lb_given % 250 + 1) as u8)
            })
        },
    )
    .await
}

/// Follows every Ingress as [`watch_services`] does: each gets [`INGRESS_IP`], where the
/// ingress controller answers.
pub async fn watch_ingresses(ctx: Arc<Ctx>, net: Arc<Net>) {
    follow::<Ingress>(
        ctx,
        net,
        |p| &mut p.ingresses,
        |i, _| {
            let lb = i.status.as_ref().and_then(|s| s.load_balancer.as_ref());
            let has = lb.and_then(|l| l.ingress.as_ref()).is_some_and(|v| !v.is_empty());
            (!has).then_some(INGRESS_IP)
        },
    )
    .await
}

/// Keeps `map(proxy)` equal to the cluster's objects of kind `K` (a list, then a watch;
/// listed again when the watch fails), reloading the rules on each change; an object
/// `address` gives an address to gets it in its status (`status.loadBalancer.ingress`).
async fn follow<K>(
    ctx: Arc<Ctx>,
    net: Arc<Net>,
    map: fn(&mut Proxy) -> &mut BTreeMap<String, K>,
    address: fn(&K, &mut Proxy) -> Option<std::net::Ipv4Addr>,
) where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::api::{ListParams, WatchEvent, WatchParams};
    let api: Api<K> = Api::all(ctx.client.clone());
    let key = |o: &K| {
        format!(
            "{}/{}",
            o.meta().namespace.as_deref().unwrap_or_default(),
            o.meta().name.as_deref().unwrap_or_default()
        )
    };
    let give = |o: &K, p: &mut Proxy| {
        if let Some(ip) = address(o, p) {
            tokio::spawn(give_address::<K>(ctx.clone(), o.clone(), ip));
        }
    };
    loop {
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                crate::log(format_args!("{}: list failed: {e}", K::plural(&())));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        {
            let mut p = net.proxy.lock().unwrap_or_else(PoisonError::into_inner);
            for o in &list.items {
                give(o, &mut p);
            }
            *map(&mut p) = list.items.into_iter().map(|o| (key(&o), o)).collect();
            net.reload(&mut p);
        }
        let wp = WatchParams::default().timeout(60);
        let Ok(stream) = api.watch(&wp, &rv).await else {
            // listed again, after a pause
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        };
        let mut stream = stream.boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let mut p = net.proxy.lock().unwrap_or_else(PoisonError::into_inner);
            match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    give(&o, &mut p);
                    map(&mut p).insert(key(&o), o);
                }
                WatchEvent::Deleted(o) => {
                    map(&mut p).remove(&key(&o));
                }
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(_) => break,
            }
            net.reload(&mut p);
        }
    }
}

/// Writes `ip` as `o`'s load-balancer address (its status), as a load balancer or an
/// ingress controller does.
async fn give_address<K>(ctx: Arc<Ctx>, o: K, ip: std::net::Ipv4Addr)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (Some(ns), Some(name)) = (o.meta().namespace.as_deref(), o.meta().name.as_deref()) else {
        return;
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
    let what = format!("{} {ns}/{name}", K::kind(&()));
    match api
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => crate::log(format_args!("{what}: address {ip}")),
        Err(e) => crate::log(format_args!("{what}: address not given: {e}")),
    }
}

/// Where the test ingress controller answers (every Ingress's address), DNATed in every
/// node to its listener on node 0's pod address, port 80.
pub const INGRESS_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 253, 1);

/// The ingress controller: a listener on node 0's pod address, port 80, inside node 0's
/// namespace, that routes each connection by its first request's `Host` and path (the
/// Ingresses' rules: host equal or absent, longest path prefix) to the backend Service's
/// ClusterIP and port, and relays the bytes; 404 when no rule matches. Connections, not
/// requests, are routed (enough for a test: a keep-alive connection keeps one host).
pub fn ingress_controller(net: Arc<Net>) -> anyhow::Result<()> {
    let path = net.node_path(0);
    let addr = std::net::SocketAddr::new(address(Addr::Pod, 0, Family::V4), 80);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = tx.clone();
        let run = move || -> anyhow::Result<()> {
            kpatrol::modes::reach::netns::enter(&path)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let _ = ready.send(Ok(()));
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(route(net.clone(), conn));
                }
            })
        };
        if let Err(e) = run() {
            let _ = tx.send(Err(e));
        }
    });
    rx.recv()
        .map_err(|_| anyhow::anyhow!("the ingress controller's thread ended"))?
}

async fn route(net: Arc<Net>, mut conn: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let (host, path) = loop {
        let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await else {
            return;
        };
        if n == 0 || head.len() > 16 << 10 {
            return;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = req.parse(&head) {
            let host = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| {
                    String::from_utf8_lossy(h.value)
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
            break (host, req.path.unwrap_or("/").to_string());
        }
    };
    let backend = {
        let p = net.proxy.lock().unwrap_or_else(PoisonError::into_inner);
        backend_of(&p, host.as_deref(), &path)
    };
    let Some(backend) = backend else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nno route\r\n")
            .await;
        return;
    };
    let Ok(Ok(mut up)) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(backend),
    )
    .await
    else {
        let _ = conn
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    if up.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
    }
}

/// The ClusterIP and port an Ingress rule sends `host` and `path` to. Pure.
fn backend_of(p: &Proxy, host: Option<&str>, path: &str) -> Option<std::net::SocketAddr> {
    let mut best: Option<(
        usize,
        String,
        String,
        &k8s_openapi::api::networking::v1::ServiceBackendPort,
    )> = None;
    for ing in p.ingresses.values() {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        for rule in ing.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
            if rule.host.as_deref().is_some_and(|h| Some(h) != host) {
                continue;
            }
            for hp in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let prefix = hp.path.as_deref().unwrap_or("/");
                let Some(svc) = hp.backend.service.as_ref() else {
                    continue;
                };
                let Some(port) = svc.port.as_ref() else { continue };
                if path.starts_with(prefix) && best.as_ref().is_none_or(|b| b.0 < prefix.len()) {
                    best = Some((prefix.len(), ns.clone(), svc.name.clone(), port));
                }
            }
        }
    }
    let (_, ns, name, port) = best?;
    let svc = p.services.get(&format!("{ns}/{name}"))?;
    let spec = svc.spec.as_ref()?;
    let ip = spec.cluster_ip.as_deref()?.parse().ok()?;
    let sp = spec.ports.iter().flatten().find(|sp| match (&port.name, port.number) {
        (Some(n), _) => sp.name.as_deref() == Some(n.as_str()),
        (None, Some(num)) => sp.port == num,
        (None, None) => false,
    })?;
    Some(std::net::SocketAddr::new(ip, u16::try_from(sp.port).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ingress_routes_by_host_and_longest_path_to_its_services_cluster_ip() {
        let svc = |name: &str, ip: &str| -> Service {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "a"},
                "spec": {"clusterIP": ip, "ports": [{"name": "mesh", "port": 80}]},
            }))
            .unwrap()
        };
        let ing: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "i", "namespace": "a"},
            "spec": {"rules": [{"host": "mesh.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "root", "port": {"number": 80}}}},
                {"path": "/kpatrol", "pathType": "Prefix", "backend": {"service": {"name": "mesh", "port": {"name": "mesh"}}}},
            ]}}]},
        }))
        .unwrap();
        let p = Proxy {
            services: BTreeMap::from([
                ("a/mesh".to_string(), svc("mesh", "10.0.0.7")),
                ("a/root".to_string(), svc("root", "10.0.0.8")),
            ]),
            ingresses: BTreeMap::from([("a/i".to_string(), ing)]),
            ..Default::default()
        };
        assert_eq!(
            backend_of(&p, Some("mesh.example.com"), "/kpatrol/x"),
            Some("10.0.0.7:80".parse().unwrap())
        );
        assert_eq!(
            backend_of(&p, Some("mesh.example.com"), "/other"),
            Some("10.0.0.8:80".parse().unwrap())
        );
        assert_eq!(
            backend_of(&p, Some("else.example.com"), "/kpatrol"),
            None,
            "another host"
        );
    }

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
        let r = ruleset(1, &services, &endpoints, false);
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
        assert!(!ruleset(2, &services, &endpoints, false).contains("31000"));
        assert!(
            ruleset(2, &services, &endpoints, true)
                .contains("ip daddr 198.18.253.1 tcp dport 80 dnat ip to 198.18.1.10:80")
        );
    }
}
