//! A test kubelet: registers N fake Nodes on a real API server, keeps them Ready, and runs
//! every pod bound to them as real local processes (no containers, no images). It is a cargo
//! example for tests and laptops (`scripts/cluster up`), not a product binary.
//!
//! ```text
//! kubelet --kubeconfig DIR/kubeconfig --nodes N --dir DIR/kubelet --bin-dir BIN [--node-prefix node-] [--netns]
//! ```
//!
//! Nodes `node-0` … `node-(N-1)`: created (or adopted when they exist), their status set through
//! `nodes/<n>/status` (Ready, InternalIP 127.0.0.1, capacity, nodeInfo v1.37.2 linux/amd64) and
//! their Lease in `kube-node-lease` renewed every 10 s, so node-lifecycle-controller keeps them
//! Ready and removes the not-ready taint. The real kube-scheduler binds pods to them.
//!
//! Pods: every pod whose `spec.nodeName` is one of ours is run in a folder
//! `DIR/pods/<namespace>_<name>_<uid>/`: init containers first in order (sidecars, i.e. init
//! containers with `restartPolicy: Always`, are ignored), then the containers together, each as
//! a process in its own process group. `command[0]` is taken by its basename from `--bin-dir`
//! (`kpatrol`, `kpatrol-probe`); a command that is not there fails the container with reason
//! `ContainerCannotRun` (exit code 128). Args are `command[1..]` then `args`, with `$(VAR)`
//! expanded as Kubernetes does. The environment is the pod's only (env, envFrom, downward API,
//! ConfigMap and Secret keys read through the API), plus `PATH`, `HOME=<podfolder>`,
//! `KUBERNETES_SERVICE_HOST/PORT` (the API server's) and what is listed below.
//!
//! Files: volumes (configMap, secret, projected with serviceAccountToken / configMap / secret /
//! downwardAPI, downwardAPI, emptyDir; any other kind is an empty folder) are written once to
//! `<podfolder>/volumes/<volume>/`, and each container's `volumeMounts` become symlinks
//! `<podfolder>/root/<mountPath>` → that folder (or its `subPath`). Output (stdout and stderr)
//! goes to `<podfolder>/<container>.log`, appended; nothing is a pipe.
//!
//! **The path rewrite rule** (there is no chroot): an argument or env value that is an absolute
//! path at, below or above a `mountPath` of the container (`/etc/kpatrol/task/task.yaml`,
//! `/etc/kpatrol` for a mount at `/etc/kpatrol/task`), alone or after the first `=`
//! (`--task=/etc/kpatrol/…`), is rewritten to `<podfolder>/root` + that path; one equal to the
//! container's `terminationMessagePath` becomes its termination-log file. `/` alone is never
//! rewritten. Besides, the process gets:
//! - `KPATROL_TERMINATION_LOG=<podfolder>/<container>.termination-log` (emptied before each
//!   start, read after exit: at most 4096 bytes; with `FallbackToLogsOnError`, an empty file
//!   and a non-zero exit, the last 80 lines and at most 2048 bytes of the log, the kubelet's
//!   own limits);
//! - `KPATROL_MOUNTS=<podfolder>/root/etc/kpatrol` when a mount is at or under `/etc/kpatrol`
//!   (kpatrol's mounts root) and the pod does not set it;
//! - with a service account token (the pod's `automountServiceAccountToken`, else the
//!   ServiceAccount's, not false): `KUBECONFIG=<podfolder>/kubeconfig`, holding the API
//!   server's URL and CA from `--kubeconfig` and a token minted through the TokenRequest API,
//!   bound to the pod, for the API server's default audience, so the pod's calls pass the
//!   real RBAC authorizer as its ServiceAccount (never the kubelet's credentials). The usual
//!   `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}` are under the
//!   root too (from the projected volume the ServiceAccount admission adds, or written here).
//!
//! Status: `pods/<p>/status` is patched (strategic merge, retried with backoff) as the kubelet
//! does: Pending while init containers run, Running with every condition True once the
//! containers started (hostIP 127.0.0.1; podIP an address of the pod's own, 127.10.0.0 and
//! on, also what the downward API gives, and `KPATROL_LISTEN_POD_IPS=1` so a mesh agent
//! serves there alone; with `--netns`, its node's pod addresses, shared by the node's pods),
//! then Succeeded (every container exited 0)
//! or Failed, each container `terminated{exitCode, reason Completed/Error, message}`.
//! `restartPolicy: OnFailure` / `Always` restart a container after a backoff of 1 s doubling
//! to 30 s (faster than the kubelet's 10 s … 5 min, for tests), counting `restartCount`.
//!
//! Ends: a pod given a deletionTimestamp gets SIGTERM (its process groups), SIGKILL after its
//! grace period (at most 30 s), its final status, then is deleted with `gracePeriodSeconds=0`
//! and its folder removed. `activeDeadlineSeconds` (from the worker's start) kills it the same
//! way and marks it Failed with reason `DeadlineExceeded`. A pod whose ConfigMap, Secret or
//! ServiceAccount is missing waits (status `CreateContainerConfigError`) and is failed after
//! 5 minutes. On start, pods already bound to our nodes and not terminal (an earlier run's) are
//! marked Failed with reason `KubeletRestarted`, never rerun. On SIGTERM/SIGINT the kubelet
//! kills its processes and exits 0 without writing anything.
//!
//! `--netns` (root; see the `netns` module): each node a network namespace of its own with
//! its pods in it, kube-proxy's DNAT, a load balancer, an ingress controller and Multus's
//! second interface, for the mesh's tests.
//!
//! Not done: probes (a running container is ready), resource limits, images, hostNetwork
//! (without `--netns` everything shares the host's network), Service links, token refresh (tokens live 1 h),
//! pods of several containers mounting different volumes at the same path.

/// One line on stderr, with the time (see [`log`]).
macro_rules! log {
    ($($t:tt)*) => { $crate::log(format_args!($($t)*)) };
}

mod api;
mod netns;
mod node;
mod pod;
mod prepare;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{ExecAuthCluster, KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "kubelet",
    about = "A test kubelet: fake Nodes whose pods run as local processes."
)]
struct Cli {
    /// The kubeconfig of the API server (the kubelet's own credentials).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many Nodes to register.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Working folder: pods/<ns>_<name>_<uid>/ for each pod.
    #[arg(long)]
    dir: PathBuf,
    /// Where `kpatrol` and `kpatrol-probe` (any command's basename) are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Node names are <prefix>0 … <prefix>(N-1).
    #[arg(long, default_value = "node-")]
    node_prefix: String,
    /// Do not run `kpatrol-probe` containers: complete them at once, exit 0, with a pass
    /// summary as their termination message (for benchmarks of the launcher over many
    /// nodes; every other container still runs).
    #[arg(long)]
    synthetic_probes: bool,
    /// Each node a network namespace of its own, its pods in it (root; `ip` and `nft`):
    /// see the netns module. Pods reach the API server through a forwarder in each node.
    #[arg(long)]
    netns: bool,
}

/// The API server as pods see it.
pub struct Server {
    /// `https://127.0.0.1:6443`
    pub url: String,
    pub host: String,
    pub port: u16,
    /// PEM of the CA that signed the server's certificate, when the kubeconfig has one.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
}

/// What the pods' workers share.
pub struct Ctx {
    pub client: kube::Client,
    pub server: Server,
    pub bin_dir: PathBuf,
    /// `--synthetic-probes`
    pub synthetic_probes: bool,
    /// `DIR/pods`
    pub pods_dir: PathBuf,
    pub nodes: HashSet<String>,
    /// Live process groups (their leaders' pids), for the kill on exit.
    pub procs: Mutex<HashMap<i32, String>>,
    /// Pods: running workers and every uid seen (never run twice).
    pub registry: Mutex<pod::Registry>,
    /// Set on SIGTERM/SIGINT: nothing more is written to the API.
    stopping: AtomicBool,
    /// The next pod's address, counted (`pod::pod_ip`).
    pub next_ip: std::sync::atomic::AtomicU32,
    /// `--netns`: the nodes' namespaces and the proxy's rules.
    pub net: Option<Arc<netns::Net>>,
    /// `--node-prefix`
    pub node_prefix: String,
}

impl Ctx {
    /// The index of our node `name` (`<prefix><index>`).
    pub fn node_index(&self, name: &str) -> Option<u32> {
        name.strip_prefix(&self.node_prefix)?.parse().ok()
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Sends `sig` to every live process group.
    fn signal_all(&self, sig: i32) -> usize {
        let procs = self.procs.lock().unwrap_or_else(PoisonError::into_inner);
        for pgid in procs.keys() {
            pod::kill_group(*pgid, sig);
        }
        procs.len()
    }

    fn live(&self) -> usize {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One line on stderr, with the time.
pub fn log(line: std::fmt::Arguments<'_>) {
    eprintln!(
        "{} kubelet: {line}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubelet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubelet: {e:#}");
            ExitCode::FAILURE
        }
    };
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}

/// The API server's URL and CA, from the kubeconfig's current context.
fn server_of(kc: &Kubeconfig, url: &str) -> anyhow::Result<Server> {
    let context = kc
        .current_context
        .as_ref()
        .and_then(|c| kc.contexts.iter().find(|n| &n.name == c))
        .or_else(|| kc.contexts.first())
        .and_then(|c| c.context.as_ref());
    let named = context
        .and_then(|c| kc.clusters.iter().find(|n| n.name == c.cluster))
        .or_else(|| kc.clusters.first())
        .context("the kubeconfig has no cluster")?;
    let cluster = named.cluster.as_ref().context("the kubeconfig's cluster is empty")?;
    let exec = ExecAuthCluster::try_from(cluster).context("reading the kubeconfig's CA")?;
    let uri: http::Uri = url.parse().context("the API server's URL")?;
    let host = uri.host().context("the API server's URL has no host")?.to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
    Ok(Server {
        url: url.trim_end_matches('/').to_string(),
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port,
        ca_pem: exec.certificate_authority_data,
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let bin_dir =
        std::fs::canonicalize(&cli.bin_dir).with_context(|| format!("--bin-dir {}", cli.bin_dir.display()))?;
    for b in ["kpatrol", "kpatrol-probe"] {
        if !bin_dir.join(b).is_file() {
            log!("warning: {} is not in --bin-dir {}", b, bin_dir.display());
        }
    }
    std::fs::create_dir_all(&cli.dir).with_context(|| format!("--dir {}", cli.dir.display()))?;
    let dir = std::fs::canonicalize(&cli.dir)?;
    let pods_dir = dir.join("pods");
    std::fs::create_dir_all(&pods_dir)?;
    let kc =
        Kubeconfig::read_from(&cli.kubeconfig).with_context(|| format!("--kubeconfig {}", cli.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc.clone(), &KubeConfigOptions::default())
        .await
        .with_context(|| format!("--kubeconfig {}", cli.kubeconfig.display()))?;
    let server = server_of(&kc, &config.cluster_url.to_string())?;
    let client = kube::Client::try_from(config).context("the API client")?;
    let names: Vec<String> = (0..cli.nodes).map(|i| format!("{}{i}", cli.node_prefix)).collect();
    let net = match cli.netns {
        true => {
            let net = Arc::new(netns::Net::create(u32::try_from(cli.nodes).context("--nodes")?)?);
            net.forward_api(&server.host, server.port).await?;
            Some(net)
        }
        false => None,
    };
    let ctx = Arc::new(Ctx {
        client,
        server,
        bin_dir,
        synthetic_probes: cli.synthetic_probes,
        pods_dir,
        nodes: names.iter().cloned().collect(),
        procs: Mutex::new(HashMap::new()),
        registry: Mutex::new(pod::Registry::default()),
        stopping: AtomicBool::new(false),
        next_ip: std::sync::atomic::AtomicU32::new(0),
        net: net.clone(),
        node_prefix: cli.node_prefix.clone(),
    });
    log!(
        "{} node(s) {}…, API server {}, pods in {}, binaries from {}",
        names.len(),
        names.first().map(String::as_str).unwrap_or("-"),
        ctx.server.url,
        ctx.pods_dir.display(),
        ctx.bin_dir.display()
    );
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut tasks = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        tasks.push(tokio::spawn(node::keep(ctx.clone(), name, i)));
    }
    tasks.push(tokio::spawn(pod::watch(ctx.clone())));
    if let Some(net) = &net {
        netns::ingress_controller(net.clone())?;
        tasks.push(tokio::spawn(netns::watch_services(ctx.clone(), net.clone())));
        tasks.push(tokio::spawn(netns::watch_ingresses(ctx.clone(), net.clone())));
    }
    tokio::select! {
        _ = term.recv() => log!("SIGTERM: stopping"),
        _ = int.recv() => log!("SIGINT: stopping"),
    }
    ctx.stopping.store(true, Ordering::SeqCst);
    for t in &tasks {
        t.abort();
    }
    // the pods' processes: SIGTERM, up to 2 s, then SIGKILL
    if ctx.signal_all(libc::SIGTERM) > 0 {
        for _ in 0..20 {
            if ctx.live() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = ctx.signal_all(libc::SIGKILL);
        if left > 0 {
            log!("SIGKILL to {left} process group(s)");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if let Some(net) = &ctx.net {
        net.remove();
    }
    log!("stopped");
    Ok(())
}
