//! Pods: the watch of pods bound to our nodes, and one worker per pod that runs its
//! containers as processes and writes its status.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Ctx;
use crate::api::{call, confirm_delete, patch_pod_status};
use crate::node::now;
use crate::prepare::{Launch, Prepared, Problem, folder, prepare};

/// A graceful deletion is given at most this long before SIGKILL.
const MAX_GRACE: u64 = 30;
/// A pod whose ConfigMaps, Secrets or ServiceAccount are missing waits this long, then fails.
const CONFIG_WAIT: Duration = Duration::from_secs(300);
/// The kubelet's limit on a termination message, and on one taken from the log.
const MESSAGE_BYTES: usize = 4096;
const LOG_MESSAGE_BYTES: usize = 2048;
const LOG_MESSAGE_LINES: usize = 80;

/// Running workers and every pod uid seen (a pod is never run twice).
#[derive(Default)]
pub struct Registry {
    running: HashMap<String, mpsc::UnboundedSender<Control>>,
    seen: HashSet<String>,
}

/// What the watch tells a worker.
#[derive(Debug)]
pub enum Control {
    /// The pod has a deletionTimestamp: stop within `grace` seconds, then confirm.
    Delete { grace: u64 },
    /// The pod is gone from the API: kill and forget.
    Gone,
}

/// Sends `sig` to the process group `pgid`.
pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

fn pod_id(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The grace of a deletion: the pod's deletionGracePeriodSeconds (else its
/// terminationGracePeriodSeconds, else 30), at most [`MAX_GRACE`].
fn grace(pod: &Pod) -> u64 {
    let g = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    u64::try_from(g).unwrap_or(0).min(MAX_GRACE)
}

/// Follows the pods bound to our nodes: a list, then a watch from its resourceVersion, again
/// after an error (1 s doubling to 30 s between failed lists).
pub async fn watch(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut fields = "spec.nodeName!=".to_string();
    let mut first = true;
    let mut delay = Duration::from_secs(1);
    loop {
        let list = match call(api.list(&ListParams::default().fields(&fields))).await {
            Ok(l) => l,
            Err(e) => {
                if e.code() == Some(400) && !fields.is_empty() {
                    log!("pods: the field selector {fields:?} is refused ({e}); watching every pod");
                    fields.clear();
                    continue;
                }
                log!("pods: list failed: {e} (again in {}s)", delay.as_secs());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        delay = Duration::from_secs(1);
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        let present: HashSet<String> = list.items.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        forget_absent(&ctx, &present);
        if first {
            clean_folders(&ctx, &present);
        }
        for pod in list.items {
            dispatch(&ctx, pod, first);
        }
        first = false;
        // watch until it fails; a 410 (too old) or any error lists again
        'watch: loop {
            let wp = WatchParams::default().fields(&fields).timeout(60);
            let stream = match call(api.watch(&wp, &rv)).await {
                Ok(s) => s,
                Err(e) => {
                    log!("pods: watch failed: {e}");
                    break 'watch;
                }
            };
            let mut stream = stream.boxed();
            loop {
                match tokio::time::timeout(Duration::from_secs(90), stream.try_next()).await {
                    Err(_) => continue 'watch,
                    Ok(Ok(None)) => continue 'watch,
                    Ok(Err(e)) => {
                        log!("pods: watch: {e}");
                        break 'watch;
                    }
                    Ok(Ok(Some(ev))) => match ev {
                        WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                            if let Some(v) = &p.metadata.resource_version {
                                rv.clone_from(v);
                            }
                            dispatch(&ctx, p, false);
                        }
                        WatchEvent::Deleted(p) => {
                            if let Some(v) = &p.metadata.resource_version {
                                rv.clone_from(v);
                            }
                            gone(&ctx, &p);
                        }
                        WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                        WatchEvent::Error(s) => {
                            if s.code != 410 {
                                log!("pods: watch error {} {}: {}", s.code, s.reason, s.message);
                            }
                            break 'watch;
                        }
                    },
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ours(ctx: &Ctx, pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| ctx.nodes.contains(n))
}

/// Acts on the latest state of a pod.
fn dispatch(ctx: &Arc<Ctx>, pod: Pod, initial: bool) {
    if !ours(ctx, &pod) {
        return;
    }
    let (ns, name, uid) = pod_id(&pod);
    if uid.is_empty() {
        return;
    }
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let mut reg = ctx.registry.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = reg.running.get(&uid) {
        if deleting {
            let _ = tx.send(Control::Delete { grace: grace(&pod) });
        }
        return;
    }
    let new = reg.seen.insert(uid.clone());
    if terminal(&pod) {
        return;
    }
    if deleting {
        // nothing of it runs here (an earlier run's, or finished without its status taking)
        let ctx = ctx.clone();
        tokio::spawn(async move { confirm_delete(&ctx, &ns, &name, &uid).await });
        return;
    }
    if !new {
        return;
    }
    if initial {
        let ctx = ctx.clone();
        tokio::spawn(async move { mark_restarted(&ctx, &pod).await });
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    reg.running.insert(uid, tx);
    tokio::spawn(run(ctx.clone(), pod, rx));
}

/// A pod deleted from the API: its worker stops, its folder goes.
fn gone(ctx: &Arc<Ctx>, pod: &Pod) {
    let (ns, name, uid) = pod_id(pod);
    let mut reg = ctx.registry.lock().unwrap_or_else(PoisonError::into_inner);
    reg.seen.remove(&uid);
    match reg.running.get(&uid) {
        Some(tx) => {
            let _ = tx.send(Control::Gone);
        }
        None => {
            let f = folder(ctx, &ns, &name, &uid);
            if f.exists() {
                let _ = std::fs::remove_dir_all(&f);
            }
        }
    }
}

/// After a fresh list: what is no longer there is gone.
fn forget_absent(ctx: &Arc<Ctx>, present: &HashSet<String>) {
    let mut reg = ctx.registry.lock().unwrap_or_else(PoisonError::into_inner);
    reg.seen.retain(|u| present.contains(u));
    for (uid, tx) in &reg.running {
        if !present.contains(uid) {
            let _ = tx.send(Control::Gone);
        }
    }
}

/// At start: the folders of pods that no longer exist are removed.
fn clean_folders(ctx: &Ctx, present: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(&ctx.pods_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let uid = name.rsplit('_').next().unwrap_or_default();
        if !present.contains(uid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A pod an earlier run of the kubelet started: Failed, not rerun.
async fn mark_restarted(ctx: &Ctx, pod: &Pod) {
    let (ns, name, _) = pod_id(pod);
    let t = now();
    let message = "the test kubelet restarted while this pod was on its node; it is not run again";
    let spec = pod.spec.clone().unwrap_or_default();
    let statuses = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<Value> {
        cs.iter()
            .map(|c| {
                json!({
                    "name": c.name, "image": c.image.clone().unwrap_or_default(),
                    "imageID": c.image.clone().unwrap_or_default(),
                    "ready": false, "started": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 137, "reason": "KubeletRestarted",
                        "message": message, "startedAt": t, "finishedAt": t}},
                })
            })
            .collect()
    };
    let mut status = json!({
        "phase": "Failed",
        "reason": "KubeletRestarted",
        "message": message,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "False", "reason": "PodFailed", "lastTransitionTime": t},
        ],
        "containerStatuses": statuses(&spec.containers),
    });
    if let Some(init) = spec.init_containers.as_deref().filter(|i| !i.is_empty())
        && let Some(o) = status.as_object_mut()
    {
        o.insert("initContainerStatuses".into(), json!(statuses(init)));
    }
    if patch_pod_status(ctx, &ns, &name, status).await {
        log!("{ns}/{name}: Failed (KubeletRestarted)");
    }
}

/// One container of a running pod.
struct Cont {
    launch: Launch,
    init: bool,
    state: Value,
    last_state: Option<Value>,
    restarts: u32,
    pid: Option<i32>,
    /// Started (or failed to start) and its end not yet seen.
    launched: bool,
    started_at: Option<String>,
    exit: Option<i32>,
    restart_pending: bool,
}

impl Cont {
    fn done(&self) -> bool {
        !self.launched && !self.restart_pending
    }

    fn running(&self) -> bool {
        self.pid.is_some()
    }
}

enum Ev {
    Exited { i: usize, code: i32 },
    CannotRun { i: usize, message: String },
    Restart { i: usize },
}

/// Why a pod stopped before its containers ended on their own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    Deleted,
    Gone,
    Deadline,
}

struct Worker {
    ctx: Arc<Ctx>,
    pod: Pod,
    ns: String,
    name: String,
    uid: String,
    folder: PathBuf,
    start_time: String,
    deadline: Option<Instant>,
    restart_policy: String,
    conts: Vec<Cont>,
    /// Conditions as last written: type → (status, lastTransitionTime).
    conditions: HashMap<&'static str, (bool, String)>,
}

/// The next pod's address: one of 127.10.0.0 … 127.249.255.255, in turn (a pod listening
/// on it is reached there alone, as a pod on its own IP is; the kubelet's pods share the
/// host's network, so `[::]` and 127.0.0.1 are still everyone's).
fn pod_ip(ctx: &Ctx) -> String {
    let n = ctx.next_ip.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (240 << 16);
    format!("127.{}.{}.{}", 10 + (n >> 16), (n >> 8) & 255, n & 255)
}

/// Runs one pod to its end.
async fn run(ctx: Arc<Ctx>, pod: Pod, mut ctl: mpsc::UnboundedReceiver<Control>) {
    let (ns, name, uid) = pod_id(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let node = spec.node_name.clone().unwrap_or_default();
    log!("{ns}/{name}: on {node}: starting");
    let deadline = spec
        .active_deadline_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(|s| Instant::now() + Duration::from_secs(s));
    // an address of its own, as each pod has in a cluster (see `pod_ip`); with --netns its
    // node's pod addresses
    let ips: Vec<String> = match (&ctx.net, ctx.node_index(&node)) {
        (Some(_), Some(i)) => crate::netns::Net::pod_ips(i).iter().map(|ip| ip.to_string()).collect(),
        _ => vec![pod_ip(&ctx)],
    };
    let mut pod = pod;
    let status = pod.status.get_or_insert_with(Default::default);
    status.pod_ip = ips.first().cloned();
    status.pod_ips = Some(
        ips.iter()
            .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.clone() })
            .collect(),
    );
    let mut w = Worker {
        folder: folder(&ctx, &ns, &name, &uid),
        ctx: ctx.clone(),
        pod,
        ns: ns.clone(),
        name: name.clone(),
        uid: uid.clone(),
        start_time: now(),
        deadline,
        restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
        conts: Vec::new(),
        conditions: HashMap::new(),
    };
    let stop = w.live(&mut ctl).await;
    match stop {
        Some(Stop::Deleted) => {
            confirm_delete(&ctx, &ns, &name, &uid).await;
            let _ = std::fs::remove_dir_all(&w.folder);
        }
        Some(Stop::Gone) => {
            log!("{ns}/{name}: gone from the API: killed");
            let _ = std::fs::remove_dir_all(&w.folder);
        }
        _ => {}
    }
    let mut reg = ctx.registry.lock().unwrap_or_else(PoisonError::into_inner);
    reg.running.remove(&uid);
}

impl Worker {
    /// The pod's life: prepare, init containers, containers, final status.
    async fn live(&mut self, ctl: &mut mpsc::UnboundedReceiver<Control>) -> Option<Stop> {
        if let Err(e) = std::fs::create_dir_all(&self.folder) {
            log!(
                "{}/{}: cannot create {}: {e}",
                self.ns,
                self.name,
                self.folder.display()
            );
        }
        // --netns: a pod that asks Multus for a second interface has the node's, said in its
        // network-status annotation before its containers start (as Multus writes it)
        if let (Some(_), Some(i)) = (&self.ctx.net, self.node_index())
            && let Some(networks) = self
                .pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("k8s.v1.cni.cncf.io/networks"))
        {
            let status = crate::netns::Net::network_status(i, networks);
            let patch = json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": status}}});
            let api: kube::Api<Pod> = kube::Api::namespaced(self.ctx.client.clone(), &self.ns);
            if let Err(e) = api
                .patch(
                    &self.name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                log!("{}/{}: network-status not written: {e}", self.ns, self.name);
            }
            // the downward API reads it from this copy
            if let Some(a) = self.pod.metadata.annotations.as_mut() {
                a.insert("k8s.v1.cni.cncf.io/network-status".into(), status);
            }
        }
        let prepared = match self.prepare(ctl).await {
            Ok(p) => p,
            Err(stop) => return stop,
        };
        for l in prepared.init.into_iter().filter(|l| !l.sidecar) {
            self.conts.push(cont(l, true));
        }
        for l in prepared.main {
            self.conts.push(cont(l, false));
        }
        if self.ctx.synthetic_probes && self.is_probe() {
            // --synthetic-probes: the probe runs for a while (as a real agent does for its
            // round, so the scheduler's one-agent-per-node rule still sees it), and passes
            let at = now();
            for c in self.conts.iter_mut().filter(|c| !c.init) {
                c.started_at = Some(at.clone());
                c.state = json!({"running": {"startedAt": at}});
            }
            self.push("Running").await;
            tokio::time::sleep(SYNTHETIC_RUN).await;
            for c in self.conts.iter_mut().filter(|c| !c.init) {
                c.started_at = Some(at.clone());
                c.exit = Some(0);
                c.state = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "message": SYNTHETIC_PASS, "startedAt": at, "finishedAt": at}});
            }
            self.finish(None).await;
            return None;
        }
        // init containers, one at a time
        let inits: Vec<usize> = (0..self.conts.len()).filter(|i| self.is_init(*i)).collect();
        for i in inits {
            let stop = self.run_group(&[i], ctl, "Pending").await;
            let failed = self.conts.get(i).is_none_or(|c| c.exit != Some(0));
            if stop.is_some() || failed {
                if stop != Some(Stop::Gone) {
                    self.finish(stop).await;
                }
                return stop;
            }
        }
        let main: Vec<usize> = (0..self.conts.len()).filter(|i| !self.is_init(*i)).collect();
        // --netns: a Service's endpoint while its containers run
        let endpoint = self.ctx.net.clone().zip(self.node_index());
        if let Some((net, i)) = &endpoint {
            net.endpoint(&self.uid, Some(crate::netns::Endpoint::of(&self.pod, *i)));
        }
        let stop = self.run_group(&main, ctl, "Running").await;
        if let Some((net, _)) = &endpoint {
            net.endpoint(&self.uid, None);
        }
        if stop != Some(Stop::Gone) {
            self.finish(stop).await;
        }
        stop
    }

    /// The index of the pod's node.
    fn node_index(&self) -> Option<u32> {
        let node = self.pod.spec.as_ref()?.node_name.as_deref()?;
        self.ctx.node_index(node)
    }

    /// Whether the pod's main container runs `kpatrol-probe`.
    fn is_probe(&self) -> bool {
        self.conts.iter().filter(|c| !c.init).any(|c| {
            c.launch
                .program
                .as_ref()
                .is_ok_and(|p| p.file_name().is_some_and(|n| n == "kpatrol-probe"))
        })
    }

    fn is_init(&self, i: usize) -> bool {
        self.conts.get(i).is_some_and(|c| c.init)
    }

    /// The pod's files; while something is missing, waits (at most [`CONFIG_WAIT`]).
    async fn prepare(&mut self, ctl: &mut mpsc::UnboundedReceiver<Control>) -> Result<Prepared, Option<Stop>> {
        let began = Instant::now();
        let mut told = String::new();
        loop {
            let problem = match prepare(&self.ctx, &self.pod, &self.folder).await {
                Ok(p) => return Ok(p),
                Err(Problem(p)) => p,
            };
            if problem != told {
                log!("{}/{}: cannot start yet: {problem}", self.ns, self.name);
                self.waiting_status("CreateContainerConfigError", &problem).await;
                told = problem.clone();
            }
            let far = Instant::now() + Duration::from_secs(86400);
            let give_up = began + CONFIG_WAIT;
            tokio::select! {
                c = ctl.recv() => match c {
                    Some(Control::Delete { .. }) => return Err(Some(Stop::Deleted)),
                    _ => return Err(Some(Stop::Gone)),
                },
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = tokio::time::sleep_until(give_up) => {
                    self.failed_unstarted("CreateContainerConfigError", &problem).await;
                    return Err(None);
                }
                _ = tokio::time::sleep_until(self.deadline.unwrap_or(far)), if self.deadline.is_some() => {
                    self.failed_unstarted("DeadlineExceeded", "Pod was active on the node longer than the specified deadline").await;
                    return Err(Some(Stop::Deadline));
                }
            }
        }
    }

    /// Containers waiting for `reason` (phase Pending).
    async fn waiting_status(&mut self, reason: &str, message: &str) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let waiting = |c: &k8s_openapi::api::core::v1::Container| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
                "imageID": "", "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}}})
        };
        let statuses: Vec<Value> = spec.containers.iter().map(waiting).collect();
        let mut status = self.base_status("Pending", false);
        if let Some(o) = status.as_object_mut() {
            o.insert("containerStatuses".into(), json!(statuses));
        }
        patch_pod_status(&self.ctx, &self.ns, &self.name, status).await;
    }

    /// A pod that never started: Failed with `reason`.
    async fn failed_unstarted(&mut self, reason: &str, message: &str) {
        let mut status = self.base_status("Failed", true);
        if let Some(o) = status.as_object_mut() {
            o.insert("reason".into(), json!(reason));
            o.insert("message".into(), json!(message));
        }
        if patch_pod_status(&self.ctx, &self.ns, &self.name, status).await {
            log!("{}/{}: Failed ({reason})", self.ns, self.name);
        }
    }

    /// Starts container `i` (its events go to `etx`).
    fn start(&mut self, i: usize, etx: &mpsc::UnboundedSender<Ev>) {
        let (ns, name) = (self.ns.clone(), self.name.clone());
        let node = self.node_index();
        let Some(c) = self.conts.get_mut(i) else {
            return;
        };
        c.launched = true;
        let l = &c.launch;
        let _ = std::fs::write(&l.term_log, b"");
        let program = match &l.program {
            Ok(p) => p.clone(),
            Err(m) => {
                let _ = etx.send(Ev::CannotRun { i, message: m.clone() });
                return;
            }
        };
        let out = match std::fs::OpenOptions::new().create(true).append(true).open(&l.log) {
            Ok(f) => f,
            Err(e) => {
                let message = format!("log file {}: {e}", l.log.display());
                let _ = etx.send(Ev::CannotRun { i, message });
                return;
            }
        };
        let err = match out.try_clone() {
            Ok(f) => f,
            Err(e) => {
                let _ = etx.send(Ev::CannotRun {
                    i,
                    message: format!("log file: {e}"),
                });
                return;
            }
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&l.args)
            .env_clear()
            .envs(l.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&l.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(false);
        // --netns: the process starts in its node's network namespace
        let node_ns = match (&self.ctx.net, node) {
            (Some(net), Some(n)) => match std::fs::File::open(net.node_path(n)) {
                Ok(f) => Some(f),
                Err(e) => {
                    let message = format!("node {n}'s network namespace: {e}");
                    let _ = etx.send(Ev::CannotRun { i, message });
                    return;
                }
            },
            _ => None,
        };
        if let Some(f) = &node_ns {
            let fd = std::os::fd::AsRawFd::as_raw_fd(f);
            // SAFETY: between fork and exec only setns(2), a system call, runs
            unsafe {
                cmd.pre_exec(move || {
                    let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                    rustix::thread::move_into_link_name_space(fd, Some(rustix::thread::LinkNameSpaceType::Network))
                        .map_err(std::io::Error::from)
                });
            }
        }
        let spawned = cmd.spawn();
        drop(node_ns);
        match spawned {
            Ok(mut child) => {
                let pid = child.id().and_then(|p| i32::try_from(p).ok());
                let t = now();
                c.pid = Some(pid.unwrap_or(0));
                c.started_at = Some(t.clone());
                c.state = json!({"running": {"startedAt": t}});
                if let Some(pid) = pid {
                    self.ctx
                        .procs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(pid, format!("{ns}/{name}/{}", c.launch.name));
                }
                log!(
                    "{ns}/{name}: container {} started: pid {}, {} {}",
                    c.launch.name,
                    pid.unwrap_or(0),
                    program.display(),
                    c.launch.args.join(" ")
                );
                let etx = etx.clone();
                tokio::spawn(async move {
                    let code = match child.wait().await {
                        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL)),
                        Err(_) => 128 + libc::SIGKILL,
                    };
                    let _ = etx.send(Ev::Exited { i, code });
                });
            }
            Err(e) => {
                let message = format!("starting {}: {e}", program.display());
                let _ = etx.send(Ev::CannotRun { i, message });
            }
        }
    }

    /// Container `i` ended with `code`; `cannot_run` when it never started.
    fn ended(&mut self, i: usize, code: i32, cannot_run: Option<String>) {
        let (ns, name) = (self.ns.clone(), self.name.clone());
        let Some(c) = self.conts.get_mut(i) else {
            return;
        };
        c.launched = false;
        if let Some(pid) = c.pid.take().filter(|p| *p > 0) {
            // what the process left in its group goes with it, as with a container
            kill_group(pid, libc::SIGKILL);
            self.ctx
                .procs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&pid);
        }
        let t = now();
        let (reason, message) = match cannot_run {
            Some(m) => ("ContainerCannotRun", m),
            None => (
                if code == 0 { "Completed" } else { "Error" },
                termination_message(&c.launch, code),
            ),
        };
        let mut terminated = json!({
            "exitCode": code, "reason": reason,
            "startedAt": c.started_at.clone().unwrap_or_else(|| t.clone()), "finishedAt": t,
        });
        if !message.is_empty()
            && let Some(o) = terminated.as_object_mut()
        {
            o.insert("message".into(), json!(message));
        }
        c.state = json!({ "terminated": terminated });
        c.exit = Some(code);
        log!(
            "{ns}/{name}: container {} exited {code} ({reason}){}",
            c.launch.name,
            if message.is_empty() {
                ""
            } else {
                " with a termination message"
            }
        );
    }

    fn should_restart(&self, i: usize) -> bool {
        let Some(c) = self.conts.get(i) else {
            return false;
        };
        let failed = c.exit != Some(0);
        match self.restart_policy.as_str() {
            "Always" if c.init => failed,
            "Always" => true,
            "OnFailure" => failed,
            _ => false,
        }
    }

    fn signal(&self, group: &[usize], sig: i32) {
        for i in group {
            if let Some(pid) = self.conts.get(*i).and_then(|c| c.pid) {
                kill_group(pid, sig);
            }
        }
    }

    fn cancel_restarts(&mut self) {
        for c in &mut self.conts {
            c.restart_pending = false;
        }
    }

    /// Runs containers `group` together until each has ended for good, or the pod is stopped.
    async fn run_group(
        &mut self,
        group: &[usize],
        ctl: &mut mpsc::UnboundedReceiver<Control>,
        phase: &str,
    ) -> Option<Stop> {
        let (etx, mut erx) = mpsc::unbounded_channel::<Ev>();
        for i in group {
            self.start(*i, &etx);
        }
        self.push(phase).await;
        let far = Instant::now() + Duration::from_secs(10 * 365 * 86400);
        let spec_grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(30)
            .min(MAX_GRACE);
        let mut stop: Option<Stop> = None;
        let mut kill_at: Option<Instant> = None;
        let mut give_up: Option<Instant> = None;
        loop {
            if group.iter().all(|i| self.conts.get(*i).is_none_or(Cont::done)) {
                break;
            }
            let may_stop = !matches!(stop, Some(Stop::Deleted | Stop::Gone));
            tokio::select! {
                ev = erx.recv() => {
                    let Some(ev) = ev else { break };
                    match ev {
                        Ev::Exited { i, code } => self.after_exit(i, code, None, stop.is_none(), &etx),
                        Ev::CannotRun { i, message } => self.after_exit(i, 128, Some(message), stop.is_none(), &etx),
                        Ev::Restart { i } => {
                            let go = stop.is_none() && self.conts.get(i).is_some_and(|c| c.restart_pending);
                            if let Some(c) = self.conts.get_mut(i) {
                                c.restart_pending = false;
                                if go {
                                    c.restarts += 1;
                                }
                            }
                            if go {
                                self.start(i, &etx);
                            }
                        }
                    }
                    if stop.is_none() {
                        self.push(phase).await;
                    }
                }
                c = ctl.recv(), if may_stop => match c {
                    Some(Control::Delete { grace }) => {
                        log!("{}/{}: deletion: SIGTERM, {grace}s grace", self.ns, self.name);
                        if stop.is_none() {
                            self.signal(group, libc::SIGTERM);
                            kill_at = Some(Instant::now() + Duration::from_secs(grace));
                        }
                        stop = Some(Stop::Deleted);
                        self.cancel_restarts();
                    }
                    _ => {
                        stop = Some(Stop::Gone);
                        self.cancel_restarts();
                        self.signal(group, libc::SIGKILL);
                        kill_at = None;
                        give_up = Some(Instant::now() + Duration::from_secs(5));
                    }
                },
                _ = tokio::time::sleep_until(self.deadline.unwrap_or(far)), if stop.is_none() && self.deadline.is_some() => {
                    log!("{}/{}: activeDeadlineSeconds passed: SIGTERM, {spec_grace}s grace", self.ns, self.name);
                    stop = Some(Stop::Deadline);
                    self.cancel_restarts();
                    self.signal(group, libc::SIGTERM);
                    kill_at = Some(Instant::now() + Duration::from_secs(spec_grace));
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                    log!("{}/{}: grace over: SIGKILL", self.ns, self.name);
                    self.signal(group, libc::SIGKILL);
                    kill_at = None;
                    give_up = Some(Instant::now() + Duration::from_secs(5));
                }
                _ = tokio::time::sleep_until(give_up.unwrap_or(far)), if give_up.is_some() => {
                    log!("{}/{}: processes did not exit after SIGKILL; giving up on them", self.ns, self.name);
                    break;
                }
            }
        }
        stop
    }

    /// Container `i` ended: its state, and a restart after a backoff when its policy says so.
    fn after_exit(
        &mut self,
        i: usize,
        code: i32,
        cannot_run: Option<String>,
        may_restart: bool,
        etx: &mpsc::UnboundedSender<Ev>,
    ) {
        self.ended(i, code, cannot_run);
        if !may_restart || !self.should_restart(i) {
            return;
        }
        let Some(c) = self.conts.get_mut(i) else {
            return;
        };
        let backoff = Duration::from_secs(1u64 << c.restarts.min(5)).min(Duration::from_secs(30));
        c.last_state = Some(c.state.clone());
        c.restart_pending = true;
        c.state = json!({"waiting": {"reason": "CrashLoopBackOff",
            "message": format!("back-off {}s restarting failed container={}", backoff.as_secs(), c.launch.name)}});
        log!(
            "{}/{}: container {} restarts in {}s",
            self.ns,
            self.name,
            c.launch.name,
            backoff.as_secs()
        );
        let etx = etx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            let _ = etx.send(Ev::Restart { i });
        });
    }

    /// Conditions with their transition times, kept from one write to the next.
    fn condition(&mut self, type_: &'static str, ok: bool, reason: Option<&str>) -> Value {
        let t = now();
        let time = match self.conditions.get(type_) {
            Some((was, when)) if *was == ok => when.clone(),
            _ => {
                self.conditions.insert(type_, (ok, t.clone()));
                t
            }
        };
        let mut c = json!({"type": type_, "status": if ok { "True" } else { "False" },
            "lastProbeTime": null, "lastTransitionTime": time});
        if let (Some(r), Some(o)) = (reason, c.as_object_mut()) {
            o.insert("reason".into(), json!(r));
        }
        c
    }

    /// Phase, conditions, addresses and start time.
    fn base_status(&mut self, phase: &str, terminal: bool) -> Value {
        let inits_ok = self.conts.iter().filter(|c| c.init).all(|c| c.exit == Some(0));
        let mains: Vec<&Cont> = self.conts.iter().filter(|c| !c.init).collect();
        let ready = !terminal && !mains.is_empty() && mains.iter().all(|c| c.running());
        let not_ready = if terminal { "PodCompleted" } else { "ContainersNotReady" };
        let conditions = vec![
            self.condition("PodReadyToStartContainers", !terminal, None),
            self.condition(
                "Initialized",
                inits_ok,
                (!inits_ok).then_some("ContainersNotInitialized"),
            ),
            self.condition("ContainersReady", ready, (!ready).then_some(not_ready)),
            self.condition("Ready", ready, (!ready).then_some(not_ready)),
        ];
        let ips: Vec<String> = self
            .pod
            .status
            .iter()
            .flat_map(|s| s.pod_ips.iter().flatten())
            .map(|p| p.ip.clone())
            .collect();
        let ip = ips.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
        let host = match (&self.ctx.net, self.node_index()) {
            (Some(_), Some(i)) => crate::netns::Net::node_ip(i).to_string(),
            _ => "127.0.0.1".into(),
        };
        json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host,
            "hostIPs": [{"ip": host}],
            "podIP": ip,
            "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "startTime": self.start_time,
        })
    }

    /// The pod's status with its containers' (`phase` unless every container has started).
    async fn push(&mut self, phase: &str) {
        let init_pending = self.conts.iter().any(|c| c.init && c.exit != Some(0));
        let phase = if init_pending { "Pending" } else { phase };
        let mut status = self.base_status(phase, false);
        self.add_containers(&mut status);
        patch_pod_status(&self.ctx, &self.ns, &self.name, status).await;
    }

    fn add_containers(&self, status: &mut Value) {
        let init_pending = self.conts.iter().any(|c| c.init && c.exit != Some(0));
        let st = |c: &Cont| {
            let state = if !c.init && init_pending && c.started_at.is_none() {
                json!({"waiting": {"reason": "PodInitializing"}})
            } else {
                c.state.clone()
            };
            json!({
                "name": c.launch.name, "image": c.launch.image, "imageID": c.launch.image,
                "containerID": format!("process://{}/{}", self.uid, c.launch.name),
                "ready": c.running() && !c.init, "started": c.running(),
                "restartCount": c.restarts,
                "state": state,
                "lastState": c.last_state.clone().unwrap_or_else(|| json!({})),
            })
        };
        let init: Vec<Value> = self.conts.iter().filter(|c| c.init).map(st).collect();
        let main: Vec<Value> = self.conts.iter().filter(|c| !c.init).map(st).collect();
        if let Some(o) = status.as_object_mut() {
            o.insert("containerStatuses".into(), json!(main));
            if !init.is_empty() {
                o.insert("initContainerStatuses".into(), json!(init));
            }
        }
    }

    /// The final status: Succeeded when every container exited 0 (and no deadline passed).
    async fn finish(&mut self, stop: Option<Stop>) {
        let all_ok = self.conts.iter().all(|c| c.exit == Some(0));
        let phase = if all_ok && stop != Some(Stop::Deadline) {
            "Succeeded"
        } else {
            "Failed"
        };
        let mut status = self.base_status(phase, true);
        self.add_containers(&mut status);
        if stop == Some(Stop::Deadline)
            && let Some(o) = status.as_object_mut()
        {
            o.insert("reason".into(), json!("DeadlineExceeded"));
            o.insert(
                "message".into(),
                json!("Pod was active on the node longer than the specified deadline"),
            );
        }
        if patch_pod_status(&self.ctx, &self.ns, &self.name, status).await {
            log!("{}/{}: {phase}", self.ns, self.name);
        }
    }
}

/// How long a `--synthetic-probes` probe runs.
const SYNTHETIC_RUN: Duration = Duration::from_secs(10);
/// The termination message of a `--synthetic-probes` probe: a pass with no targets (a
/// `kpatrol::report::RoundReport`).
const SYNTHETIC_PASS: &str = r#"{"schemaVersion":2,"task":"synthetic","verdict":"pass"}"#;

fn cont(launch: Launch, init: bool) -> Cont {
    Cont {
        launch,
        init,
        state: json!({"waiting": {"reason": "ContainerCreating"}}),
        last_state: None,
        restarts: 0,
        pid: None,
        launched: false,
        started_at: None,
        exit: None,
        restart_pending: false,
    }
}

/// The termination message as the kubelet reads it: the file (at most 4096 bytes); with
/// FallbackToLogsOnError, an empty file and a failure, the log's last 80 lines within 2048 bytes.
fn termination_message(l: &Launch, code: i32) -> String {
    let file = read_head(&l.term_log, MESSAGE_BYTES);
    if !file.is_empty() || !l.fallback_to_logs || code == 0 {
        return file;
    }
    log_tail(&l.log, LOG_MESSAGE_BYTES, LOG_MESSAGE_LINES)
}

fn read_head(path: &std::path::Path, max: usize) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(u64::try_from(max).unwrap_or(u64::MAX)).read_to_end(&mut buf);
    }
    text_within(&buf, max)
}

fn log_tail(path: &std::path::Path, max: usize, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(u64::try_from(max).unwrap_or(u64::MAX));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let all: Vec<&str> = text.lines().collect();
    let tail = all
        .iter()
        .skip(all.len().saturating_sub(lines))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    // the first of the lines may be cut: still within the bound
    let mut t = tail;
    while t.len() > max {
        t.remove(0);
    }
    t
}

/// Bytes as text, at most `max` bytes, cut at a character boundary.
fn text_within(buf: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(buf).into_owned();
    while s.len() > max {
        s.pop();
    }
    s
}
