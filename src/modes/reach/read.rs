//! Reading a native `Mesh`'s targets: what every agent presses (the other agents, over
//! which paths and families, how many of them each round) and the Ingress the `ingress`
//! path goes through; and its expectations (each cell's success rate, mean and p99). The
//! rest of its spec is the skeleton `plan::native` plans.
//!
//! ```yaml
//! targets:
//!   paths: [pod, clusterIP, nodePort]    # also loadBalancer, ingress, multus
//!   families: [ipv4, ipv6]               # default [ipv4]
//!   peers: 10                            # default all: each agent presses this many, rotated each round
//!   ingress: {className: nginx, host: mesh.example.com, path: /kpatrol}   # with the ingress path
//! ```

use std::path::Path;

use super::{IngressRoute, Peers, ReachPlan};
use crate::modes::Mode;
use crate::plan::native::ExpectSpec;
use crate::task::k8s::NameRule;
use crate::task::read::{Cx, Fields, field_name, name_list};
use crate::task::yaml::Node;

/// The paths a mesh takes, in the order reports list them.
pub const PATHS: [&str; 6] = ["pod", "clusterIP", "nodePort", "loadBalancer", "ingress", "multus"];
/// The families.
pub const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];
/// What `peers` allows.
pub const PEERS_ALLOWED: &str = "`all` (the default), or a number ≥ 1: each agent presses that many peers, others each round, so every pair is covered within ⌈(nodes − 1) / peers⌉ rounds; a number at or above the node count means all";

/// Reads and plans a native `Mesh`'s targets.
pub(crate) fn mesh_targets(cx: &mut Cx, n: &Node, path: &str, _: &ExpectSpec, _: &Path) -> Option<Mode> {
    let mut f = cx.fields(n, path)?;
    let before = cx.diags.error_count();
    let paths = names(cx, &mut f, "paths", &PATHS, "path");
    let families = if f.has("families") {
        names(cx, &mut f, "families", &FAMILIES, "family")
    } else {
        Some(vec!["ipv4"])
    };
    let peers = match f.get("peers") {
        None => Some(Peers::All),
        Some(node) => {
            let p = f.path_of("peers");
            match cx.scalar_string(node, &p) {
                Some(s) if s == "all" => Some(Peers::All),
                Some(s) => match s.parse::<i64>() {
                    Ok(k) if (1..=i64::from(u32::MAX)).contains(&k) => Some(Peers::Limit(k as u32)),
                    _ => {
                        cx.diags
                            .error(node.pos, &p, format!("`{s}` is not a number of peers"))
                            .allowed(PEERS_ALLOWED);
                        None
                    }
                },
                None => None,
            }
        }
    };
    let ingress_pos = f.pos_of("ingress");
    let ingress_path = f.path_of("ingress");
    let ingress = f.map(cx, "ingress").map(|mut i| {
        let class = field_name(cx, &mut i, "className", NameRule::Object);
        let host = field_name(cx, &mut i, "host", NameRule::Host);
        let route = i.str(cx, "path").unwrap_or_else(|| "/kpatrol".into());
        if !route.starts_with('/') {
            cx.diags
                .error(i.pos_of("path"), &i.path_of("path"), format!("`{route}` is not an absolute path"))
                .allowed("a path starting with /, e.g. /kpatrol");
        }
        for (key, got) in [("className", class.is_some()), ("host", host.is_some())] {
            if !got && !i.has(key) {
                cx.diags
                    .error(i.pos, &i.path, format!("the Ingress needs `{key}`"))
                    .allowed("{className: CLASS, host: HOST, path: /kpatrol}");
            }
        }
        i.finish(cx);
        (class, host, route)
    });
    f.finish(cx);
    let (paths, families, peers) = (paths?, families?, peers?);
    let on = |p: &str| paths.contains(&p);
    let ingress_route = match ingress {
        Some((Some(class_name), Some(host), path)) => Some(IngressRoute { class_name, host, path }),
        Some(_) => None,
        None if on("ingress") => {
            cx.diags
                .error(ingress_pos, &ingress_path, "the ingress path needs an Ingress: its class and host")
                .allowed("ingress: {className: CLASS, host: HOST} beside `paths`, or leave `ingress` out of `paths`");
            None
        }
        None => None,
    };
    if cx.diags.error_count() > before {
        return None;
    }
    Some(Mode::Reach(ReachPlan {
        ipv4: families.contains(&"ipv4"),
        ipv6: families.contains(&"ipv6"),
        endpoint: on("pod"),
        multus_interface: on("multus"),
        cluster_ip: on("clusterIP"),
        node_port: on("nodePort"),
        load_balancer: on("loadBalancer"),
        ingress: on("ingress"),
        peers,
        ingress_route,
    }))
}

/// The names listed at `key`, each one of `allowed` (each one `one`); at least one.
fn names(cx: &mut Cx, f: &mut Fields, key: &'static str, allowed: &[&'static str], one: &str) -> Option<Vec<&'static str>> {
    let (path, pos) = (f.path_of(key), f.pos_of(key));
    let Some(items) = f.list(cx, key) else {
        if !f.has(key) {
            cx.diags
                .error(pos, &path, format!("a mesh needs its {key}"))
                .allowed(allowed.join(", "));
        }
        return None;
    };
    name_list(cx, items, &path, pos, allowed, one)
}

/// A Mesh's own expectation fields: none, but each cell is judged by its success rate, mean
/// and p99 only, so other percentiles are refused rather than ignored.
pub(crate) fn mesh_expect(cx: &mut Cx, f: &mut Fields, _: &mut ExpectSpec) {
    let Some(latency) = f.get("latency") else { return };
    let path = f.path_of("latency");
    let Some(mut l) = cx.fields(latency, &path) else { return };
    for key in ["p50", "p90", "p95", "max"] {
        if l.has(key) {
            cx.diags
                .error(l.pos_of(key), &l.path_of(key), format!("a Mesh does not judge a cell's {key}"))
                .allowed("latency.mean and latency.p99 (each cell: source node → target node over one path)");
        }
        l.ignore(key);
    }
    l.ignore("mean");
    l.ignore("p99");
}
