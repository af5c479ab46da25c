//! A local mesh's own network (`kpatrol run --netns`): each agent is a node in a network
//! namespace of its own, joined to the others by veth pairs and a bridge that live in one
//! more namespace (the switch), so the host's own network is never touched. Every path is a
//! different real path through the kernel:
//!
//! - `pod`: the agent's pod address, straight over the bridge;
//! - `nodePort`: the node's address on port [`NODE_PORT`], DNATed by nftables on that node to
//!   its agent (kube-proxy's `externalTrafficPolicy: Local`, so a broken rule points at the
//!   node that has it);
//! - `clusterIP`: one virtual address, DNATed by nftables in the sending node to one of the
//!   live agents at random (what kube-proxy does): its cells are each node's row towards the
//!   Service, drawn on the diagonal;
//! - `multus`: a second interface per node on a second bridge and subnet.
//!
//! IPv4 from 198.18.0.0/15, IPv6 from the ULA fd6b:7061::/48. Impairments (`--impair`) are
//! nftables rules too: a share of a node's packets dropped, a path's rule left out.
//!
//! [`Network::plan`] is pure (addresses, commands and rulesets, unit-tested); [`Network::create`]
//! runs them with `ip` (iproute2) and `nft` (nftables) and deletes every namespace when dropped;
//! [`enter`] moves the calling thread into a node. Namespaces are named
//! `kpatrol-<pid>-<node>`: a later run deletes those of a process that no longer exists.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Family, Via};

/// The port every agent serves on (kdoctor's agents answer on 80).
pub const AGENT_PORT: u16 = 80;
/// The NodePort of the agents' Service on every node.
pub const NODE_PORT: u16 = 30080;
/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// What goes wrong on one node, on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impairment {
    /// The agent neither serves, presses nor reports.
    Down,
    /// The node has no IPv6 address: IPv6 to and from it is skipped, not failed.
    NoIpv6,
    /// This share (percent) of the node's packets is dropped: every packet in and out, or only
    /// those of one path coming in (`clusterIP`: going out, towards the Service).
    Loss { via: Option<Via>, percent: u8 },
    /// One path broken on the node: its NodePort or ClusterIP rule left out, its pod address
    /// or second interface dropping everything that comes in.
    PathDown(Via),
}

/// Which address of node `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    Node,
    Pod,
    Multus,
}

/// Node `i`'s address of `kind` in `family`.
pub fn address(kind: Addr, i: u32, family: Family) -> IpAddr {
    let host = 10 + (i % 240) as u8;
    match (family, kind) {
        (Family::V4, Addr::Node) => IpAddr::V4(Ipv4Addr::new(198, 18, 0, host)),
        (Family::V4, Addr::Pod) => IpAddr::V4(Ipv4Addr::new(198, 18, 1, host)),
        (Family::V4, Addr::Multus) => IpAddr::V4(Ipv4Addr::new(198, 19, 0, host)),
        (Family::V6, Addr::Node) => IpAddr::V6(Ipv6Addr::new(0xfd6b, 0x7061, 0, 0, 0, 0, 0xa, host.into())),
        (Family::V6, Addr::Pod) => IpAddr::V6(Ipv6Addr::new(0xfd6b, 0x7061, 0, 0, 0, 0, 0xb, host.into())),
        (Family::V6, Addr::Multus) => IpAddr::V6(Ipv6Addr::new(0xfd6b, 0x7061, 0, 1, 0, 0, 0, host.into())),
    }
}

/// The agents' Service's virtual address in `family`.
pub fn cluster_ip(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(198, 18, 255, 1)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0xfd6b, 0x7061, 0, 0, 0, 0, 0xff, 1)),
    }
}

/// The prefix length of `kind`'s subnet in `family`.
fn prefix(family: Family) -> u8 {
    match family {
        Family::V4 => 16,
        Family::V6 => 64,
    }
}

/// `ip:port` as a URL authority (IPv6 in brackets).
pub fn authority(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Everything about the local network, before it exists.
#[derive(Clone, Debug)]
pub struct Network {
    /// The prefix of every namespace's name: `kpatrol-<pid>`.
    pub prefix: String,
    pub nodes: u32,
    pub multus: bool,
    /// Per node, its impairments.
    pub impaired: Vec<Vec<Impairment>>,
    /// Whether the agents' Service (ClusterIP, NodePort) gets its DNAT rules: a local mesh's,
    /// not a test kubelet's (whose proxy writes them from the cluster's Services).
    pub services: bool,
}

/// Why the local network could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "--netns needs `{0}` ({1}); install it (Debian: apt-get install {1}) and run as root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    )]
    Missing(&'static str, &'static str),
    #[error("--netns: `{command}` failed: {stderr} (it needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN)")]
    Command { command: String, stderr: String },
    #[error("--netns: cannot enter network namespace {}: {source}", path.display())]
    Enter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Network {
    /// The network of `nodes` nodes for this process, with `impaired` per node.
    pub fn plan(nodes: u32, multus: bool, impaired: Vec<Vec<Impairment>>) -> Network {
        Network {
            prefix: format!("kpatrol-{}", std::process::id()),
            nodes,
            multus,
            impaired,
            services: true,
        }
    }

    fn has(&self, i: u32, what: Impairment) -> bool {
        self.impaired.get(i as usize).is_some_and(|v| v.contains(&what))
    }

    /// Whether node `i`'s agent runs.
    pub fn up(&self, i: u32) -> bool {
        !self.has(i, Impairment::Down)
    }

    /// Whether node `i` has addresses in `family`.
    pub fn has_family(&self, i: u32, family: Family) -> bool {
        family == Family::V4 || !self.has(i, Impairment::NoIpv6)
    }

    /// The name of node `i`'s namespace.
    pub fn node_netns(&self, i: u32) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn switch_netns(&self) -> String {
        format!("{}-switch", self.prefix)
    }

    /// Where node `i`'s namespace is, for [`enter`].
    pub fn node_path(&self, i: u32) -> PathBuf {
        Path::new(NETNS_DIR).join(self.node_netns(i))
    }

    /// Every `ip` command that makes the network, in order.
    pub fn commands(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        let mut ip = |args: &[&str]| out.push(args.iter().map(|a| a.to_string()).collect());
        let sw = self.switch_netns();
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "set", "lo", "up"]);
        let bridges: &[&str] = if self.multus { &["br0", "br1"] } else { &["br0"] };
        for br in bridges {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"]);
            ip(&["-n", &sw, "link", "set", br, "up"]);
        }
        for i in 0..self.nodes {
            let ns = self.node_netns(i);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let mut links = vec![("eth0", format!("n{i}"), "br0", [Addr::Node, Addr::Pod].as_slice())];
            if self.multus {
                links.push(("eth1", format!("m{i}"), "br1", [Addr::Multus].as_slice()));
            }
            for (dev, peer, br, kinds) in links {
                ip(&["-n", &ns, "link", "add", dev, "type", "veth", "peer", "name", &peer, "netns", &sw]);
                ip(&["-n", &sw, "link", "set", &peer, "master", br, "up"]);
                for family in [Family::V4, Family::V6] {
                    if !self.has_family(i, family) {
                        continue;
                    }
                    for kind in kinds {
                        let a = format!("{}/{}", address(*kind, i, family), prefix(family));
                        if family == Family::V6 {
                            ip(&["-n", &ns, "addr", "add", &a, "dev", dev, "nodad"]);
                        } else {
                            ip(&["-n", &ns, "addr", "add", &a, "dev", dev]);
                        }
                    }
                }
                ip(&["-n", &ns, "link", "set", dev, "up"]);
            }
        }
        out
    }

    /// Node `i`'s nftables ruleset: the Service's DNAT (ClusterIP, NodePort) and its
    /// impairments.
    pub fn ruleset(&self, i: u32) -> String {
        let mut nat_out = String::new();
        let mut nat_pre = String::new();
        let mut filter_in = String::new();
        let mut filter_out = String::new();
        let impaired = self.impaired.get(i as usize).map(Vec::as_slice).unwrap_or(&[]);
        let path_down = |v: Via| impaired.contains(&Impairment::PathDown(v));
        for family in [Family::V4, Family::V6] {
            if !self.has_family(i, family) {
                continue;
            }
            let (ipf, nat) = match family {
                Family::V4 => ("ip", "ip"),
                Family::V6 => ("ip6", "ip6"),
            };
            // ClusterIP: to one of the live agents at random, as kube-proxy does
            let backends: Vec<IpAddr> = (0..self.nodes)
                .filter(|j| self.up(*j) && self.has_family(*j, family))
                .map(|j| address(Addr::Pod, j, family))
                .collect();
            if !self.services {
                continue;
            }
            if !backends.is_empty() && !path_down(Via::ClusterIp) {
                let map: Vec<String> = backends.iter().enumerate().map(|(k, a)| format!("{k} : {a}")).collect();
                let _ = writeln!(
                    nat_out,
                    "    {ipf} daddr {} tcp dport {AGENT_PORT} dnat {nat} to numgen random mod {} map {{ {} }}",
                    cluster_ip(family),
                    backends.len(),
                    map.join(", ")
                );
            }
            // NodePort: this node's address to its own agent (traffic policy Local)
            if !path_down(Via::NodePort) {
                let rule = format!(
                    "    {ipf} daddr {} tcp dport {NODE_PORT} dnat {nat} to {}\n",
                    address(Addr::Node, i, family),
                    authority(address(Addr::Pod, i, family), AGENT_PORT)
                );
                nat_pre.push_str(&rule);
                nat_out.push_str(&rule); // the node pressing its own NodePort
            }
        }
        for imp in impaired {
            match *imp {
                Impairment::Loss { via: None, percent } => {
                    let _ = writeln!(filter_in, "    numgen random mod 100 < {percent} drop");
                    let _ = writeln!(filter_out, "    numgen random mod 100 < {percent} drop");
                }
                Impairment::Loss { via: Some(v), percent } => {
                    let rule = format!("numgen random mod 100 < {percent} drop");
                    self.path_rules(i, v, &rule, &mut filter_in, &mut filter_out);
                }
                Impairment::PathDown(v @ (Via::Pod | Via::Multus)) => {
                    self.path_rules(i, v, "drop", &mut filter_in, &mut filter_out);
                }
                Impairment::PathDown(Via::ClusterIp | Via::NodePort | Via::LoadBalancer | Via::Ingress)
                | Impairment::Down
                | Impairment::NoIpv6 => {}
            }
        }
        let mut out = String::from("table inet kpatrol {\n");
        for (name, hook, rules) in [
            ("nat_output", "type nat hook output priority -100", &nat_out),
            ("nat_prerouting", "type nat hook prerouting priority -100", &nat_pre),
            ("filter_input", "type filter hook input priority 0", &filter_in),
            ("filter_output", "type filter hook output priority 0", &filter_out),
        ] {
            if rules.is_empty() {
                continue;
            }
            let _ = write!(out, "  chain {name} {{\n    {hook};\n{rules}  }}\n");
        }
        out.push_str("}\n");
        out
    }

    /// Rules that hit path `v`'s packets on node `i`: coming in (pod, NodePort, Multus) or
    /// going out towards the Service (ClusterIP).
    fn path_rules(&self, i: u32, v: Via, action: &str, filter_in: &mut String, filter_out: &mut String) {
        for family in [Family::V4, Family::V6] {
            if !self.has_family(i, family) {
                continue;
            }
            let ipf = if family == Family::V4 { "ip" } else { "ip6" };
            let _ = match v {
                // the pod address itself, not what NodePort translated to it
                Via::Pod => writeln!(
                    filter_in,
                    "    ct original {ipf} daddr {} tcp dport {AGENT_PORT} {action}",
                    address(Addr::Pod, i, family)
                ),
                Via::NodePort => writeln!(
                    filter_in,
                    "    ct original {ipf} daddr {} ct original proto-dst {NODE_PORT} {action}",
                    address(Addr::Node, i, family)
                ),
                Via::Multus => writeln!(
                    filter_in,
                    "    {ipf} daddr {} {action}",
                    address(Addr::Multus, i, family)
                ),
                Via::ClusterIp => writeln!(
                    filter_out,
                    "    ct original {ipf} daddr {} {action}",
                    cluster_ip(family)
                ),
                // not local paths
                Via::LoadBalancer | Via::Ingress => Ok(()),
            };
        }
    }

    /// Makes the network: deletes what dead runs left, then runs every command and loads
    /// every node's ruleset. On failure, what was made is deleted.
    pub fn create(self) -> Result<Created, NetnsError> {
        for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
            if which(tool).is_none() {
                return Err(NetnsError::Missing(tool, package));
            }
        }
        remove_stale();
        let created = Created { network: self };
        for c in created.network.commands() {
            run("ip", &c, None)?;
        }
        for i in 0..created.network.nodes {
            let rules = created.network.ruleset(i);
            if rules.lines().count() > 2 {
                let ns = created.network.node_netns(i);
                run("ip", &["netns", "exec", &ns, "nft", "-f", "-"].map(String::from), Some(&rules))?;
            }
        }
        Ok(created)
    }
}

/// A network that exists: dropped, every namespace of it is deleted (and with them their
/// links and rules).
#[derive(Debug)]
pub struct Created {
    pub network: Network,
}

impl Drop for Created {
    fn drop(&mut self) {
        delete_prefixed(&self.network.prefix);
    }
}

/// Deletes every namespace named `<prefix>-…`.
fn delete_prefixed(prefix: &str) {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else { return };
    let lead = format!("{prefix}-");
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&lead) {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes the namespaces of earlier runs whose process is gone (killed before it could).
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else { return };
    let mut dead = std::collections::BTreeSet::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("kpatrol-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            dead.insert(format!("kpatrol-{pid}"));
        }
    }
    for prefix in dead {
        delete_prefixed(&prefix);
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn run(tool: &str, args: &[String], stdin: Option<&str>) -> Result<(), NetnsError> {
    let command = format!("{tool} {}", args.join(" "));
    let fail = |stderr: String| NetnsError::Command {
        command: command.clone(),
        stderr,
    };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Moves the calling thread into the network namespace at `path`: sockets it opens from then
/// on (and threads it starts) are in that node's network.
pub fn enter(path: &Path) -> Result<(), NetnsError> {
    let fail = |source| NetnsError::Enter {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(fail)?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| fail(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(impaired: Vec<Vec<Impairment>>) -> Network {
        Network {
            prefix: "kpatrol-7".into(),
            nodes: 3,
            multus: true,
            impaired,
            services: true,
        }
    }

    #[test]
    fn addresses_are_distinct_per_node_kind_and_family() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..64 {
            for kind in [Addr::Node, Addr::Pod, Addr::Multus] {
                for family in [Family::V4, Family::V6] {
                    let a = address(kind, i, family);
                    assert!(seen.insert(a), "{a} twice");
                    match a {
                        IpAddr::V4(v4) => assert_eq!(v4.octets()[0..2], [198, 18 + (kind == Addr::Multus) as u8]),
                        IpAddr::V6(v6) => assert_eq!(v6.segments()[0..2], [0xfd6b, 0x7061]),
                    }
                }
            }
        }
        assert_eq!(authority(address(Addr::Pod, 2, Family::V6), 80), "[fd6b:7061::b:c]:80");
        assert_eq!(authority(cluster_ip(Family::V4), 80), "198.18.255.1:80");
    }

    #[test]
    fn commands_build_a_switch_and_one_namespace_per_node() {
        let n = net(vec![vec![], vec![Impairment::NoIpv6], vec![]]);
        let c: Vec<String> = n.commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(c[0], "netns add kpatrol-7-switch");
        assert!(c.contains(&"netns add kpatrol-7-2".to_string()));
        assert!(c.contains(&"-n kpatrol-7-0 link add eth0 type veth peer name n0 netns kpatrol-7-switch".to_string()));
        assert!(c.contains(&"-n kpatrol-7-switch link set m1 master br1 up".to_string()));
        assert!(c.contains(&"-n kpatrol-7-0 addr add fd6b:7061::b:a/64 dev eth0 nodad".to_string()));
        assert!(c.contains(&"-n kpatrol-7-1 addr add 198.19.0.11/16 dev eth1".to_string()));
        assert!(!c.iter().any(|l| l.starts_with("-n kpatrol-7-1 addr add fd6b")), "node 1 has no IPv6");
    }

    #[test]
    fn rulesets_carry_the_service_and_the_impairments() {
        let n = net(vec![
            vec![],
            vec![Impairment::Down],
            vec![Impairment::Loss { via: None, percent: 20 }, Impairment::PathDown(Via::NodePort)],
        ]);
        let r0 = n.ruleset(0);
        assert!(
            r0.contains(
                "ip daddr 198.18.255.1 tcp dport 80 dnat ip to numgen random mod 2 map { 0 : 198.18.1.10, 1 : 198.18.1.12 }"
            ),
            "only live agents behind the Service:\n{r0}"
        );
        assert!(r0.contains("ip daddr 198.18.0.10 tcp dport 30080 dnat ip to 198.18.1.10:80"), "{r0}");
        assert!(r0.contains("ip6 daddr fd6b:7061::a:a tcp dport 30080 dnat ip6 to [fd6b:7061::b:a]:80"), "{r0}");
        assert!(!r0.contains("drop"), "{r0}");
        let r2 = n.ruleset(2);
        assert!(!r2.contains("30080"), "its NodePort rule left out:\n{r2}");
        assert_eq!(r2.matches("numgen random mod 100 < 20 drop").count(), 2, "in and out:\n{r2}");
        let pod = net(vec![vec![], vec![Impairment::PathDown(Via::Pod)], vec![]]).ruleset(1);
        assert!(pod.contains("ct original ip daddr 198.18.1.11 tcp dport 80 drop"), "{pod}");
        let cip = net(vec![vec![Impairment::PathDown(Via::ClusterIp)], vec![], vec![]]).ruleset(0);
        assert!(!cip.contains("198.18.255.1"), "{cip}");
    }
}
