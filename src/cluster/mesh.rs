//! The mesh's launcher (`kpatrol round` of a Mesh or a kdoctor NetReach): one agent per
//! matching node in a Job of the round; once they run, where each answers (its pod's
//! addresses, its node's NodePort, its Multus interfaces, the agents' Service), every
//! agent's orders over the control channel, every row gathered before the deadline, and the
//! matrix judged as one. Reading where agents answer from pods, nodes and the Service is pure
//! and tested here; the calls are tested on a real control plane (tests/k8s.rs).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, PostParams};

use super::round::{self, Launch, NodeFacts, Start, api_err};
use super::{ClusterError, TemplateError};
use crate::judge::matrix::{CellExpect, Matrix};
use crate::modes::reach::agent::{self, AGENT_PORT, Orders, client};
use crate::modes::reach::aims::{self, Reach};
use crate::modes::reach::{Family, NETWORK_STATUS, ReachPlan, Via, multus_ips};
use crate::names::label;
use crate::plan::Plan;
use crate::report::mesh::{MatrixRecord, MeshReport, Place, Round};

/// Agents' orders sent, or rows asked for, at once.
const IN_FLIGHT: usize = 64;

/// How long one control call may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this long, from the first agent's start, for the others to start.
const MAX_STRAGGLER_GRACE: Duration = Duration::from_secs(120);

/// How long an agent whose pod runs may take to listen for its orders.
const ORDERS_RETRY: Duration = Duration::from_secs(30);

/// Time kept after the pressing for the rows to come in: an agent serves its row as soon
/// as its pressing ends, so one silent this long after is gone.
const GATHER_MARGIN: Duration = Duration::from_secs(15);

/// One running agent: its pod, its addresses and its Multus interfaces' addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agent {
    pub pod: String,
    pub ips: Vec<IpAddr>,
    pub multus: Vec<IpAddr>,
}

impl Agent {
    /// Where the launcher reaches the agent's control paths: its first address.
    pub fn base(&self) -> Option<String> {
        self.ips
            .first()
            .map(|ip| format!("http://{}", SocketAddr::new(*ip, AGENT_PORT)))
    }
}

/// The running agents among `pods` by node: the first Running pod with an address on each
/// node (the scheduler keeps one per node). Pure.
pub fn running_agents<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeMap<String, Agent> {
    let mut out = BTreeMap::new();
    for p in pods {
        let Some(status) = p.status.as_ref() else { continue };
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if status.phase.as_deref() != Some("Running") || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.ip.parse().ok())
            .collect();
        if ips.is_empty()
            && let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        if ips.is_empty() {
            continue;
        }
        let multus = multus_ips(
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NETWORK_STATUS))
                .map(String::as_str),
        );
        out.entry(node).or_insert(Agent {
            pod: p.metadata.name.clone().unwrap_or_default(),
            ips,
            multus,
        });
    }
    out
}

/// Keeps the first of `ips` of each family, at `port`, in `slots` (IPv4, IPv6).
fn first_per_family(slots: &mut [Option<SocketAddr>; 2], ips: impl IntoIterator<Item = IpAddr>, port: u16) {
    for ip in ips {
        if let Some(s) = slots.get_mut(usize::from(ip.is_ipv6())) {
            s.get_or_insert(SocketAddr::new(ip, port));
        }
    }
}

/// Where `node`'s agent answers: its pod's addresses and Multus interfaces on the agent's
/// port, its node's addresses on the Service's NodePort. Pure.
pub fn reach_of(agent: Option<&Agent>, node: &NodeFacts, node_port: Option<u16>) -> Reach {
    let mut r = Reach::default();
    let Some(agent) = agent else { return r };
    first_per_family(&mut r.pod, agent.ips.iter().copied(), AGENT_PORT);
    first_per_family(&mut r.multus, agent.multus.iter().copied(), AGENT_PORT);
    if let Some(port) = node_port {
        first_per_family(&mut r.node_port, node.addresses.iter().copied(), port);
    }
    r
}

/// The agents' Service as the planner reads it (its cluster IPs on its port) and its
/// NodePort. Pure.
pub fn service_of(svc: &Service) -> (aims::Service, Option<u16>) {
    let mut out = aims::Service::default();
    let Some(spec) = svc.spec.as_ref() else {
        return (out, None);
    };
    let port = spec.ports.as_ref().and_then(|p| p.first());
    let service_port = port.map_or(80, |p| p.port);
    let node_port = port.and_then(|p| p.node_port).and_then(|p| u16::try_from(p).ok());
    let ips = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default();
    let Ok(port) = u16::try_from(service_port) else {
        return (out, node_port);
    };
    first_per_family(&mut out.cluster_ip, ips.iter().filter_map(|ip| ip.parse().ok()), port);
    // the addresses a load balancer gave it (a hostname-only one cannot be pressed by IP)
    let lb = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let lb_ips = lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten();
    first_per_family(
        &mut out.load_balancer,
        lb_ips.filter_map(|i| i.ip.as_deref()?.parse().ok()),
        port,
    );
    (out, node_port)
}

/// Where the agents' Ingress answers (its controller's addresses on port 80), with its
/// host and its first path, into `service`. Pure.
pub fn ingress_of(ing: &Ingress, service: &mut aims::Service) {
    let rule = ing.spec.as_ref().and_then(|s| s.rules.as_ref()).and_then(|r| r.first());
    service.ingress_host = rule.and_then(|r| r.host.clone());
    service.ingress_path = rule
        .and_then(|r| r.http.as_ref())
        .and_then(|h| h.paths.first())
        .and_then(|p| p.path.clone())
        .unwrap_or_else(|| "/".into());
    let lb = ing.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let lb_ips = lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten();
    first_per_family(
        &mut service.ingress,
        lb_ips.filter_map(|i| i.ip.as_deref()?.parse().ok()),
        80,
    );
}

/// The paths a cluster round presses: every one the task enables. Pure.
pub fn vias(reach: &ReachPlan) -> Vec<Via> {
    [
        (reach.endpoint, Via::Pod),
        (reach.cluster_ip, Via::ClusterIp),
        (reach.node_port, Via::NodePort),
        (reach.multus_interface, Via::Multus),
        (reach.load_balancer, Via::LoadBalancer),
        (reach.ingress, Via::Ingress),
    ]
    .into_iter()
    .filter_map(|(on, via)| on.then_some(via))
    .collect()
}

/// The round's number for the neighbour rotation: the minutes in a CronJob's Job name
/// (`<cronjob>-<minutes since the epoch>`) over the schedule's `interval` when it has one
/// of whole minutes (so consecutive rounds count 1 apart and every pair is covered within
/// ⌈(nodes − 1) / limit⌉ rounds), else those minutes; 0 for another name. Pure.
pub fn round_number(own_job: Option<&str>, interval: Option<Duration>) -> u64 {
    let minutes: u64 = own_job
        .and_then(|j| j.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let every = interval.map_or(1, |i| (i.as_secs() / 60).max(1));
    minutes / every
}

/// The round's token (hex of 16 random bytes), which the agents' control paths ask for.
fn round_token() -> Result<String, ClusterError> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| ClusterError::Mesh("no random bytes for the round's token".into()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Runs one mesh round of `plan` in the cluster and judges its matrix.
pub async fn launch(
    client: &kube::Client,
    l: &Launch,
    plan: &Plan,
    reach: &ReachPlan,
) -> Result<MeshReport, ClusterError> {
    let started_at = std::time::SystemTime::now();
    let clock = tokio::time::Instant::now();
    let Start {
        eligible,
        skipped: unfit,
        name,
        mut template,
        owner,
        until,
    } = round::start(client, l).await?;
    if eligible.is_empty() {
        return Err(ClusterError::NoNodes {
            selector: l.node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            unfit: unfit.iter().map(|(n, why)| format!("{n}: {why}")).collect(),
        });
    }
    // the round's token reaches the agents through a Secret (owned by the launcher's Job),
    // never in the agents' Job, where whoever reads pods would see it
    let token = round_token()?;
    let secret = token_secret(client, &l.namespace, &name, owner.as_ref(), &token).await?;
    round::scope_to_round(&mut template, &name);
    let mut job_value = round::agents_job(
        &template,
        &name,
        &l.namespace,
        eligible.len(),
        &l.forward,
        &l.env,
        owner.as_ref(),
    )?;
    with_token_from(&mut job_value, &secret);
    let job: Job = serde_json::from_value(job_value).map_err(TemplateError::NotAJob)?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &l.namespace);
    jobs.create(&PostParams::default(), &job)
        .await
        .map_err(|e| api_err("Job", &name, e))?;
    // orders go out once every agent runs, or when only the pressing and the gathering
    // are left before the deadline
    let press_for = plan.pressure.duration + plan.pressure.timeout;
    let orders_by = until
        .checked_sub(press_for + GATHER_MARGIN)
        .unwrap_or_else(tokio::time::Instant::now);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &l.namespace);
    let wanted: Vec<&str> = eligible.iter().map(|n| n.name.as_str()).collect();
    // agents late past a grace from the first's start are named silent, not waited for:
    // the others wait for their orders only for so long
    let grace = (plan.round_timeout / 4).min(MAX_STRAGGLER_GRACE);
    let running = tokio::select! {
        r = wait_running(&pods, &name, &wanted, orders_by, grace) => r?,
        _ = l.stop.stopped() => BTreeMap::new(),
    };
    let vias = vias(reach);
    let mut skipped = Vec::new();
    let needs_service = vias
        .iter()
        .any(|v| matches!(v, Via::ClusterIp | Via::NodePort | Via::LoadBalancer));
    let (mut service, node_port) = match needs_service {
        true => {
            let svc_name = crate::render::mesh_service_name(plan);
            let services: Api<Service> = Api::namespaced(client.clone(), &l.namespace);
            match services.get_opt(&svc_name).await {
                Ok(Some(svc)) => service_of(&svc),
                Ok(None) => {
                    skipped.push(format!(
                        "the Service's paths: the agents' Service {svc_name} does not exist"
                    ));
                    Default::default()
                }
                Err(e) => return Err(api_err("Service", &svc_name, e)),
            }
        }
        false => Default::default(),
    };
    if vias.contains(&Via::Ingress) {
        let ing_name = crate::render::mesh_service_name(plan);
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &l.namespace);
        match ingresses.get_opt(&ing_name).await {
            Ok(Some(ing)) => ingress_of(&ing, &mut service),
            Ok(None) => skipped.push(format!("ingress: the agents' Ingress {ing_name} does not exist")),
            Err(e) => return Err(api_err("Ingress", &ing_name, e)),
        }
    }
    for f in reach.families() {
        let s = aims::slot(f);
        if vias.contains(&Via::Ingress) && service.ingress.get(s).copied().flatten().is_none() {
            skipped.push(format!(
                "ingress {}: the agents' Ingress has no {} address (no controller admitted it yet, or a hostname)",
                f.name(),
                f.label()
            ));
        }
        if vias.contains(&Via::LoadBalancer) && service.load_balancer.get(s).copied().flatten().is_none() {
            skipped.push(format!(
                "loadBalancer {}: the agents' Service has no {} load-balancer address (none given yet, or a hostname)",
                f.name(),
                f.label()
            ));
        }
        if vias.contains(&Via::ClusterIp) && service.cluster_ip.get(s).copied().flatten().is_none() {
            skipped.push(format!(
                "clusterIP {}: the agents' Service has no {} address",
                f.name(),
                f.label()
            ));
        }
        let has = |n: &&NodeFacts| n.addresses.iter().any(|a| a.is_ipv6() == (f == Family::V6));
        if vias.contains(&Via::NodePort) && node_port.is_some() && !eligible.iter().any(|n| has(&n)) {
            skipped.push(format!("nodePort {}: no node has an {} address", f.name(), f.label()));
        }
    }
    let nodes: Vec<(String, Reach)> = eligible
        .iter()
        .map(|n| (n.name.clone(), reach_of(running.get(&n.name), n, node_port)))
        .collect();
    let is_live = |i: u32| eligible.get(i as usize).is_some_and(|n| running.contains_key(&n.name));
    let planner = aims::Planner::new(
        &vias,
        &reach.families(),
        reach.peers,
        round_number(l.own_job.as_deref(), plan.schedule.interval()),
        &nodes,
        &service,
        &is_live,
    );
    skipped.extend(planner.skipped.iter().cloned());
    let http = client::new(CONTROL_TIMEOUT).map_err(|e| ClusterError::Mesh(e.to_string()))?;
    let bases: BTreeMap<u32, String> = eligible
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((i as u32, running.get(&n.name)?.base()?)))
        .collect();
    let ordered = tokio::select! {
        o = send_all(&http, &bases, (0..eligible.len() as u32).filter(|i| is_live(*i)).map(|i| planner.orders(i)), &token, until) => o,
        _ = l.stop.stopped() => Vec::new(),
    };
    let rows_due = until.min(tokio::time::Instant::now() + press_for + GATHER_MARGIN);
    // SIGTERM: the rows in hand are judged
    let gathered = client::gather(&http, ordered, Some(&token), rows_due, IN_FLIGHT, &l.stop).await;
    for (i, why) in &gathered.silent {
        if let Some(n) = eligible.get(*i as usize) {
            eprintln!("kpatrol round: no row from {}'s agent: {why}", n.name);
        }
    }
    let mut reported = vec![false; eligible.len()];
    let mut cells = Vec::new();
    let stopped = l.stop.is_stopped();
    for row in gathered.rows {
        if row.stopped {
            // evicted or deleted mid-round: a partial row, and its node is named as silent
            if let Some(n) = eligible.get(row.source as usize) {
                eprintln!("kpatrol round: {}'s agent was stopped before the round's end", n.name);
            }
            continue;
        }
        if let Some(r) = reported.get_mut(row.source as usize) {
            *r = true;
        }
        cells.extend(row.cells);
    }
    let matrix = Matrix {
        nodes: eligible.iter().map(|n| n.name.clone()).collect(),
        paths: planner.paths.clone(),
        reported,
        cells,
    };
    if let Some(owner) = &owner {
        let record = MatrixRecord::of(&plan.name, &matrix, &CellExpect::of(&plan.expect));
        keep_matrix(client, &l.namespace, owner, &record).await;
    }
    for (n, why) in &unfit {
        skipped.push(format!("{n}: {why}"));
    }
    let round = round_number(l.own_job.as_deref(), plan.schedule.interval());
    Ok(MeshReport::judged(
        plan,
        matrix,
        Round {
            agents: eligible.len() as u32,
            network: Place::Cluster,
            skipped,
            coverage: aims::coverage(reach.peers, eligible.len() as u32, round),
            stopped,
            started_at,
            duration_seconds: clock.elapsed().as_secs_f64(),
        },
    ))
}

/// The key of the token in its Secret.
const TOKEN_KEY: &str = "token";

/// Creates the Secret `<agents' Job>-token` holding the round's token, owned by the
/// launcher's Job (so it goes with the round); its name.
async fn token_secret(
    client: &kube::Client,
    namespace: &str,
    job: &str,
    owner: Option<&Job>,
    token: &str,
) -> Result<String, ClusterError> {
    let name = format!("{job}-token");
    let owner_references = owner.and_then(|o| {
        Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: o.metadata.name.clone()?,
            uid: o.metadata.uid.clone()?,
            ..Default::default()
        }])
    });
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            owner_references,
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), token.to_string())])),
        ..Default::default()
    };
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &secret)
        .await
        .map_err(|e| api_err("Secret", &name, e))?;
    Ok(name)
}

/// Gives the agents' container (of Job `job`) the round's token from Secret `secret`. Pure.
pub fn with_token_from(job: &mut serde_json::Value, secret: &str) {
    let entry = serde_json::json!({"name": agent::TOKEN_ENV,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}});
    let Some(container) = job
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let env = container.entry("env").or_insert_with(|| serde_json::json!([]));
    if let Some(list) = env.as_array_mut() {
        list.push(entry);
    }
}

/// The name of the ConfigMap that keeps round `job`'s matrix.
pub fn matrix_config_map(job: &str) -> String {
    format!("{job}-matrix")
}

/// Keeps the round's matrix in a ConfigMap owned by the launcher's Job (so it goes with the
/// round), for `kpatrol report --html`; one past a ConfigMap's size is not kept. A failure
/// is logged and changes no verdict.
async fn keep_matrix(client: &kube::Client, namespace: &str, owner: &Job, record: &MatrixRecord) {
    let (Some(job), Some(uid)) = (owner.metadata.name.as_deref(), owner.metadata.uid.as_deref()) else {
        return;
    };
    let name = matrix_config_map(job);
    let Some(json) = record.to_json() else {
        eprintln!(
            "kpatrol round: the matrix ({} cells) is past what a ConfigMap holds; not kept for `kpatrol report --html`",
            record.cells.len()
        );
        return;
    };
    let labels = owner
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| *k == label::TASK);
    let cm = k8s_openapi::api::core::v1::ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.map(|(k, v)| (k.clone(), v.clone())).collect()),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: job.to_string(),
                uid: uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(MatrixRecord::KEY.to_string(), json)])),
        ..Default::default()
    };
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &cm).await {
        eprintln!("kpatrol round: the matrix not kept: {}", api_err("ConfigMap", &name, e));
    }
}

/// Sends every agent its orders, [`IN_FLIGHT`] at a time, none after `by`; returns the
/// agents that took them (the others are named on stderr and stay silent in the matrix).
/// An agent that refuses the connection (its pod runs before its process serves) is asked
/// again every [`client::POLL`] for up to [`ORDERS_RETRY`].
async fn send_all(
    http: &reqwest::Client,
    bases: &BTreeMap<u32, String>,
    orders: impl Iterator<Item = Orders>,
    token: &str,
    by: tokio::time::Instant,
) -> Vec<client::Reachable> {
    use futures::StreamExt as _;
    let one = |o: Orders| async move {
        let base = bases.get(&o.source)?.clone();
        let node = o.nodes.get(o.source as usize).cloned().unwrap_or_default();
        let retry_by = by.min(tokio::time::Instant::now() + ORDERS_RETRY);
        let sent = tokio::time::timeout_at(by, async {
            loop {
                match client::send_orders(http, &base, Some(token), &o).await {
                    // refused (not listening yet), not timed out (a node dropping packets)
                    Err(client::ControlError::Http { source, .. })
                        if source.is_connect()
                            && !source.is_timeout()
                            && tokio::time::Instant::now() + client::POLL < retry_by =>
                    {
                        tokio::time::sleep(client::POLL).await;
                    }
                    r => return r,
                }
            }
        })
        .await;
        match sent {
            Ok(Ok(())) => Some(client::Reachable { source: o.source, base }),
            Ok(Err(e)) => {
                eprintln!("kpatrol round: orders to {node}'s agent: {e}");
                None
            }
            Err(_) => {
                eprintln!("kpatrol round: orders to {node}'s agent: the round's deadline passed");
                None
            }
        }
    };
    futures::stream::iter(orders.map(one))
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// The agents of Job `job` running on `nodes`, on a watch of its pods, once each node has
/// one, or `grace` after the first started, or `by` (then those running).
async fn wait_running(
    pods: &Api<Pod>,
    job: &str,
    nodes: &[&str],
    by: tokio::time::Instant,
    grace: Duration,
) -> Result<BTreeMap<String, Agent>, ClusterError> {
    use futures::StreamExt as _;
    let selector = format!("{}={job}", label::JOB_NAME);
    // every node's agent runs, or those that do not have ended or gone (a Job's failed
    // agent is not replaced): waiting longer would not bring them
    let mut gone = std::collections::BTreeSet::new();
    let settled = |agents: &BTreeMap<String, Agent>, gone: &std::collections::BTreeSet<String>| {
        nodes.iter().all(|n| agents.contains_key(*n)) || agents.len() + gone.len() >= nodes.len()
    };
    let mut by = by;
    let mut first_seen = false;
    loop {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_err("Pod", "list", e))?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let mut latest: BTreeMap<String, Pod> = list
            .items
            .into_iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
            .collect();
        gone.extend(
            latest
                .values()
                .filter(|p| ended(p))
                .filter_map(|p| p.metadata.name.clone()),
        );
        let agents = running_agents(latest.values());
        if !first_seen && !agents.is_empty() {
            first_seen = true;
            by = by.min(tokio::time::Instant::now() + grace);
        }
        if settled(&agents, &gone) || tokio::time::Instant::now() >= by {
            return Ok(agents);
        }
        let wp = kube::api::WatchParams::default().labels(&selector).timeout(60);
        let events = match pods.watch(&wp, &rv).await {
            Ok(events) => events,
            Err(_) => {
                // a failed watch: list again shortly, within the bound
                tokio::time::sleep_until(by.min(tokio::time::Instant::now() + Duration::from_secs(1))).await;
                continue;
            }
        };
        let mut events = events.boxed();
        loop {
            let next = tokio::select! {
                e = events.next() => e,
                _ = tokio::time::sleep_until(by) => {
                    return Ok(running_agents(latest.values()));
                }
            };
            match next {
                Some(Ok(kube::api::WatchEvent::Added(p) | kube::api::WatchEvent::Modified(p))) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if ended(&p) {
                        gone.insert(name.clone());
                    }
                    latest.insert(name, p);
                }
                Some(Ok(kube::api::WatchEvent::Deleted(p))) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    latest.remove(&name);
                    gone.insert(name);
                }
                Some(Ok(_)) => continue,
                // the watch ended or broke: list again
                Some(Err(_)) | None => break,
            }
            let agents = running_agents(latest.values());
            if settled(&agents, &gone) {
                return Ok(agents);
            }
            if !first_seen && !agents.is_empty() {
                // the first agent runs: the others get the grace from now
                first_seen = true;
                by = by.min(tokio::time::Instant::now() + grace);
                break;
            }
        }
    }
}

/// Whether a pod has ended (Succeeded or Failed) or is being deleted.
fn ended(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        || matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ips: &[&str], annotation: Option<&str>) -> Pod {
        let mut p = json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()},
        });
        if let Some(a) = annotation {
            p["metadata"]["annotations"] = json!({NETWORK_STATUS: a});
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn multus_gives_the_secondary_interfaces_addresses() {
        let status = r#"[{"name":"cbr0","interface":"eth0","ips":["10.1.0.5"],"default":true},
            {"name":"ns/macvlan","interface":"net1","ips":["192.168.9.5","fd00::5"]}]"#;
        assert_eq!(
            multus_ips(Some(status)),
            vec!["192.168.9.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]
        );
        assert!(multus_ips(Some("not json")).is_empty());
        assert!(multus_ips(None).is_empty());
    }

    #[test]
    fn one_running_agent_per_node_with_an_address() {
        let pods = [
            pod("a", "n0", "Running", &["10.0.0.5", "fd00::5"], None),
            pod("b", "n1", "Pending", &[], None),
            pod("c", "n2", "Running", &[], None),
            pod("d", "n0", "Running", &["10.0.0.6"], None),
        ];
        let agents = running_agents(&pods);
        assert_eq!(agents.keys().collect::<Vec<_>>(), ["n0"]);
        assert_eq!(agents["n0"].pod, "a");
        assert_eq!(agents["n0"].base().unwrap(), "http://10.0.0.5:8080");
    }

    #[test]
    fn where_an_agent_answers_per_path_and_family() {
        let status = r#"[{"name":"m","interface":"net1","ips":["192.168.9.5"]}]"#;
        let agents = running_agents(&[pod("a", "n0", "Running", &["10.0.0.5", "fd00::5"], Some(status))]);
        let node = NodeFacts {
            name: "n0".into(),
            addresses: vec!["172.18.0.2".parse().unwrap()],
            ..Default::default()
        };
        let r = reach_of(agents.get("n0"), &node, Some(30080));
        assert_eq!(r.pod[0], Some("10.0.0.5:8080".parse().unwrap()));
        assert_eq!(r.pod[1], Some("[fd00::5]:8080".parse().unwrap()));
        assert_eq!(r.node_port[0], Some("172.18.0.2:30080".parse().unwrap()));
        assert_eq!(r.node_port[1], None, "the node has no IPv6 address");
        assert_eq!(r.multus[0], Some("192.168.9.5:8080".parse().unwrap()));
        assert_eq!(
            reach_of(None, &node, Some(30080)),
            Reach::default(),
            "no agent, nowhere"
        );
        assert_eq!(reach_of(agents.get("n0"), &node, None).node_port, [None, None]);
    }

    #[test]
    fn the_service_gives_its_cluster_ips_and_node_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "mesh-x"},
            "spec": {"clusterIPs": ["10.96.0.9", "fd00:96::9"], "ports": [{"port": 80, "nodePort": 30123}]},
        }))
        .unwrap();
        let (s, node_port) = service_of(&svc);
        assert_eq!(s.load_balancer, [None, None], "no load balancer gave it an address");
        assert_eq!(s.cluster_ip[0], Some("10.96.0.9:80".parse().unwrap()));
        assert_eq!(s.cluster_ip[1], Some("[fd00:96::9]:80".parse().unwrap()));
        assert_eq!(node_port, Some(30123));
    }

    #[test]
    fn a_load_balancers_addresses_are_pressed_on_the_services_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "mesh-x"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30123}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}, {"hostname": "lb.example"}, {"ip": "2001:db8::7"}]}},
        }))
        .unwrap();
        let (s, _) = service_of(&svc);
        assert_eq!(s.load_balancer[0], Some("192.0.2.7:80".parse().unwrap()));
        assert_eq!(s.load_balancer[1], Some("[2001:db8::7]:80".parse().unwrap()));
    }

    #[test]
    fn an_ingress_answers_on_its_controllers_addresses_with_its_host_and_path() {
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "mesh-x"},
            "spec": {"rules": [{"host": "mesh.example.com", "http": {"paths": [{"path": "/kpatrol", "pathType": "Prefix",
                "backend": {"service": {"name": "mesh-x", "port": {"name": "mesh"}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.8"}]}},
        }))
        .unwrap();
        let mut s = aims::Service::default();
        ingress_of(&ing, &mut s);
        assert_eq!(s.ingress, [Some("192.0.2.8:80".parse().unwrap()), None]);
        assert_eq!(s.ingress_host.as_deref(), Some("mesh.example.com"));
        assert_eq!(s.ingress_path, "/kpatrol");
        let r = aims::plan(
            &[Via::Ingress],
            &[Family::V4],
            crate::modes::reach::Peers::All,
            0,
            &[(
                "n0".into(),
                Reach {
                    pod: [Some("10.0.0.5:8080".parse().unwrap()), None],
                    ..Default::default()
                },
            )],
            &s,
            |_| true,
        );
        assert_eq!(
            r.orders[0].aims,
            [agent::Aim {
                target: 0,
                path: 0,
                url: "http://192.0.2.8:80/kpatrol".into(),
                host: Some("mesh.example.com".into())
            }]
        );
    }

    #[test]
    fn the_token_comes_from_its_secret_never_in_the_job() {
        let mut job = json!({"spec": {"template": {"spec": {"containers": [{"name": "probe", "env": [{"name": "A", "value": "b"}]}]}}}});
        with_token_from(&mut job, "r-token");
        let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[1]["name"], agent::TOKEN_ENV);
        assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["name"], "r-token");
        assert!(env[1].get("value").is_none());
    }

    #[test]
    fn the_round_number_is_a_cronjob_jobs_minute() {
        assert_eq!(round_number(Some("mesh-29514220"), None), 29514220);
        let ten = Some(Duration::from_secs(600));
        assert_eq!(round_number(Some("mesh-29514220"), ten), 2951422);
        assert_eq!(
            round_number(Some("mesh-29514230"), ten),
            2951423,
            "the next round counts 1 more"
        );
        assert_eq!(round_number(Some("mesh-manual-1"), None), 1);
        assert_eq!(round_number(Some("mesh-abc"), ten), 0);
        assert_eq!(round_number(None, None), 0);
    }
}
