//! Command lines of `kpatrol` and `kpatrol-probe` (clap) and their dispatch. No domain
//! logic: each command loads, calls the library, prints, and returns an [`Exit`]. The edge
//! where files are written: `kpatrol render -o` writes what the pure `render` produced
//! ([`render_files`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diag::Severity;
use crate::duration::parse_duration;
use crate::plan::{self, Plan};
use crate::pressure::Stop;
use crate::probe::{DEFAULT_MOUNTS, Mounts};
use crate::report;
use crate::task;

/// Writes to stdout. A reader that went away (`kpatrol validate | head`) or any other write
/// error is not the verdict's business: the rest of the output is dropped quietly and the
/// command goes on (the probe still writes its termination message and telemetry), so the
/// exit code stays the verdict.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static GONE: AtomicBool = AtomicBool::new(false);
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
        GONE.store(true, Ordering::Relaxed);
    }
}

/// The whole `main` of both binaries: the panic hook, the command line, the runtime, and the
/// one mapping of outcomes to exit codes (0 pass, 1 fail, 2 could not run).
pub fn main<C: Parser, F: std::future::Future<Output = Exit>>(
    binary: &'static str,
    run: impl FnOnce(C) -> F,
) -> std::process::ExitCode {
    install_panic_hook(binary);
    let cli = C::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exit = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => {
            let exit = rt.block_on(run(cli));
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            exit
        }
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            Exit::Trouble
        }
    };
    std::process::ExitCode::from(exit as u8)
}

/// Where a crash reports itself: the termination log and the task, once known.
static CRASH_REPORT: std::sync::Mutex<Option<(PathBuf, String)>> = std::sync::Mutex::new(None);

/// Installs the panic hook of both binaries. A panic is a bug, but a pod must still say
/// what happened: the hook prints where it happened, writes an `error` termination message
/// when a termination log is known (or `KPATROL_TERMINATION_LOG` / /dev/termination-log),
/// and ends the process with exit code 2 (could not run) instead of an abort.
fn install_panic_hook(binary: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown place".into());
        let error = format!("internal error at {place}: {what}");
        eprintln!("{binary}: {error} (a bug: please report it)");
        let known = CRASH_REPORT.lock().ok().and_then(|g| g.clone());
        let (log, task) = match known {
            Some((log, task)) => (Some(log), task),
            None => (
                termination_path(
                    std::env::var_os("KPATROL_TERMINATION_LOG")
                        .map(PathBuf::from)
                        .as_deref(),
                ),
                std::env::var("KPATROL_TASK").unwrap_or_default(),
            ),
        };
        write_termination(log.as_deref(), &error_message(&task, &error));
        std::process::exit(Exit::Trouble as i32);
    }));
}

/// Tells the panic hook where this run's termination message goes.
fn crash_report_to(log: Option<&Path>, task: &str) {
    if let (Some(log), Ok(mut g)) = (log, CRASH_REPORT.lock()) {
        *g = Some((log.to_path_buf(), task.to_string()));
    }
}

/// Debug builds only: `KPATROL_TEST_PANIC=1` panics here, so tests can check the panic hook
/// (no input makes kpatrol panic on purpose).
#[allow(clippy::panic)] // on purpose, and only when asked
fn test_panic() {
    #[cfg(debug_assertions)]
    if std::env::var_os("KPATROL_TEST_PANIC").is_some() {
        panic!("KPATROL_TEST_PANIC asked for a panic");
    }
}

macro_rules! out {
    ($($t:tt)*) => { $crate::cli::emit(&format!($($t)*)) };
}

macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::emit(&(format!($($t)*) + "\n")) };
}

mod cluster;
mod progress;

use cluster::{apply, count_rounds, diff, prune, report_cmd, round, status};

/// Exit codes shared by both binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Valid / the round met its expectations.
    Ok = 0,
    /// Invalid task / the round failed its expectations.
    Fail = 1,
    /// Could not read, parse or run.
    Trouble = 2,
}

#[derive(Parser, Debug)]
#[command(name = "kpatrol", version, about = "Active inspection for Kubernetes: real traffic on a schedule, judged against each task's expectations.", long_about = None)]
pub struct Kpatrol {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check task files (native kpatrol.dev/v1 and kdoctor.io/v1beta1) and report every problem.
    ///
    /// Each problem is printed as `file:line:col: field.path: problem (allowed: …)`.
    /// Exit 0 when every task is valid, 1 when a task is invalid, 2 when a file cannot be read or parsed.
    Validate {
        /// Task files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run one round of a task here, without a cluster: real traffic, a live progress line, the verdict.
    ///
    /// A mesh (Mesh, kdoctor NetReach) runs its agents here (on loopback, or in network namespaces
    /// with --netns) and draws the matrix as a heatmap; --html FILE also writes it as an HTML
    /// page.
    ///
    /// Exit 0 when the round met its expectations, 1 when not, 2 when it could not run.
    /// Ctrl-C stops the round early and still reports what was measured.
    Run {
        /// The task file.
        file: PathBuf,
        #[command(flatten)]
        opts: RoundOpts,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Hide the live progress line (it is hidden anyway when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
        /// A mesh (Mesh, kdoctor NetReach): how many agents to run (2–64; default 4).
        #[arg(long, value_parser = clap::value_parser!(u32).range(2..=crate::modes::reach::local::MAX_AGENTS as i64))]
        agents: Option<u32>,
        /// A mesh: each agent a node in a network namespace of its own, joined by veth pairs
        /// and bridges (198.18.0.0/15 and fd6b:7061::/48), so the pod path, ClusterIP and
        /// NodePort (nftables DNAT, as kube-proxy does) and Multus (a second interface) are
        /// real, different paths. Needs root, `ip` (iproute2) and `nft` (nftables); the host's
        /// own network is not touched and the namespaces are deleted at the end.
        /// Without it the agents share loopback and take the pod path only.
        #[arg(long)]
        netns: bool,
        /// A mesh: rehearse a node gone bad (AGENT is an index from 0). AGENT=down: the agent
        /// neither serves, presses nor reports. With --netns also AGENT=loss:PCT (that share
        /// of its packets dropped, in and out), AGENT=PATH:down or AGENT=PATH:loss:PCT (PATH:
        /// pod, clusterIP, nodePort, multus) and AGENT=no-ipv6 (its IPv6 cells are skipped,
        /// not failed). Repeatable.
        #[arg(long, value_name = "AGENT=IMPAIRMENT")]
        impair: Vec<String>,
        /// A mesh: also write the matrix as one self-contained HTML page (a heatmap per path
        /// and family, the findings; it loads nothing) to FILE after the round. Exit 2 when
        /// it cannot be written.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Render tasks into Kubernetes manifests: per task a ConfigMap and a CronJob or Job (and
    /// RBAC only where the mode needs it), plus a kustomization.yaml listing them.
    ///
    /// Deterministic: the same tasks give byte-identical files. With -o DIR the directory is
    /// replaced as a whole, and only when every task rendered; without it the manifests go to
    /// stdout (for an Argo CD plugin or `kubectl apply -f -`).
    /// Exit 0 rendered, 1 a task is invalid or cannot be rendered, 2 a file cannot be read.
    Render {
        /// Task files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Directory to write (kustomize base); stdout when omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Container image holding kpatrol and kpatrol-probe.
        #[arg(long, env = "KPATROL_IMAGE", default_value = crate::render::DEFAULT_IMAGE)]
        image: String,
    },
    /// Server-side apply the rendered tasks to the cluster (field manager `kpatrol`).
    ///
    /// Every object is applied, in order (namespaces, then what runs with what it uses), and
    /// each is reported created, updated (with the fields that changed) or unchanged. The
    /// first error stops it: what was applied before is listed, nothing after is applied.
    /// Refuses a server older than Kubernetes 1.29.
    Apply {
        /// Task files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Container image holding kpatrol and kpatrol-probe.
        #[arg(long, env = "KPATROL_IMAGE", default_value = crate::render::DEFAULT_IMAGE)]
        image: String,
        /// Label every object as a member of this set (`kpatrol.dev/set`), the scope of a
        /// later `kpatrol prune --set`.
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// Print what would change (a server-side dry run); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The namespace of tasks that name none (else `kpatrol`).
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete what a set holds (objects applied with `--set NAME`) that no task file produces
    /// any more, in any namespace: workloads first, then RBAC, ServiceAccounts and ConfigMaps.
    /// Other sets, objects applied without a set, namespaces and the Jobs CronJobs started are
    /// never deleted.
    Prune {
        /// Task files or directories: what the set should still hold.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The set to prune (as given to `apply --set`).
        #[arg(long, value_name = "NAME", required = true)]
        set: String,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The namespace of tasks that name none (else `kpatrol`).
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show what `apply` would change, field by field, from a server-side dry run: fields set,
    /// changed and removed. Exit 0 no changes, 1 changes.
    Diff {
        /// Task files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Container image holding kpatrol and kpatrol-probe.
        #[arg(long, env = "KPATROL_IMAGE", default_value = crate::render::DEFAULT_IMAGE)]
        image: String,
        /// The set the objects were applied in (`apply --set`).
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// The namespace of tasks that name none (else `kpatrol`).
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// List every task kpatrol runs in the cluster with its last rounds (like `kubectl get
    /// netreach` in kdoctor): schedule, rounds done, last verdict, when.
    Status {
        /// Only this namespace (all namespaces when omitted).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// `table` for people, `json` for programs.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show the last round of a task in full: every agent with its summary and failing checks,
    /// read from the Job's pods' termination messages.
    Report {
        /// The task (its rendered name: `kpatrol status` lists them).
        task: String,
        /// The task's namespace.
        #[arg(long, short = 'n', default_value = crate::plan::DEFAULT_NAMESPACE)]
        namespace: String,
        /// `table` for people, `json` for programs.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also write the last round's matrix (a Mesh or a NetReach) as one self-contained
        /// HTML page, the heatmap `kpatrol run --html` writes (from the ConfigMap the
        /// launcher keeps with the round).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// In a cluster: run one round of a task whose agents follow the nodes (the launcher a
    /// rendered CronJob runs): one agent per matching node, then the round's verdict.
    Round {
        /// The task file (mounted from its ConfigMap).
        #[arg(long, env = "KPATROL_TASK")]
        task: PathBuf,
        /// The agents' Job template rendered beside the task.
        #[arg(long)]
        agents_job: PathBuf,
        /// Override the agents' rate (forwarded to each probe).
        #[arg(long)]
        qps: Option<String>,
        /// Override the agents' pressure duration (forwarded to each probe).
        #[arg(long)]
        duration: Option<String>,
        /// Where the round's summary goes (by default /dev/termination-log when it exists).
        #[arg(long, env = "KPATROL_TERMINATION_LOG")]
        termination_log: Option<PathBuf>,
    },
    /// Serve a small HTTP target (HTTP/1.1 and h2c): `?status=503` picks the status, `?delay=250ms` delays the answer.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

/// Which cluster the cluster commands talk to, as kubectl has it.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// The kubeconfig file (else KUBECONFIG, else ~/.kube/config, else the pod's service
    /// account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (else its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub fn target(&self) -> crate::cluster::Target {
        crate::cluster::Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    /// What `apply`, `diff` and `prune` apply, and where.
    fn to<'a>(&self, image: &'a str, set: Option<&'a str>, namespace: Option<String>) -> cluster::To<'a> {
        cluster::To {
            image,
            set,
            namespace,
            cluster: self.target(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Options of one round shared by `kpatrol run` and `kpatrol-probe`.
#[derive(Args, Debug, Clone)]
pub struct RoundOpts {
    /// The task to run when the file holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// Root of mounted Secrets and ConfigMaps: <DIR>/secrets/<name>/<key>, <DIR>/configmaps/<name>/<key>.
    #[arg(long, env = "KPATROL_MOUNTS", default_value = DEFAULT_MOUNTS)]
    pub mounts: PathBuf,
    /// Override the task's rate: requests per second per target, or `max`.
    #[arg(long)]
    pub qps: Option<String>,
    /// Override the task's pressure duration (e.g. 30s).
    #[arg(long)]
    pub duration: Option<String>,
    /// Override the task's bound on attempts in flight per target (the connection count at `--qps max`).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
}

#[derive(Parser, Debug)]
#[command(
    name = "kpatrol-probe",
    version,
    about = "Run one round of a task in one mode, as a kpatrol pod does: JSON report on stdout, a summary in the termination log.",
    after_help = PROBE_EXIT_CODES
)]
pub struct Probe {
    #[command(subcommand)]
    pub mode: ProbeMode,
}

const PROBE_EXIT_CODES: &str = "Exit codes: 0 the round met its expectations, 1 it did not, 2 it could not run.";

/// The mesh's agent (`kpatrol-probe reach`), started by the mesh's launcher in a cluster.
const REACH: &str = "reach";
const REACH_ABOUT: &str = "One agent of a mesh round (Mesh, kdoctor NetReach): serves on --listen, presses what the launcher orders, serves its row to the launcher.";

/// `kpatrol-probe <mode>`: one subcommand per mode registered in `crate::modes` that runs,
/// and the mesh's agent.
#[derive(Debug)]
pub struct ProbeMode {
    pub name: &'static str,
    pub args: ProbeArgs,
}

impl clap::FromArgMatches for ProbeMode {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = m.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        if name == REACH {
            return Ok(ProbeMode {
                name: REACH,
                args: ProbeArgs::from_arg_matches(sub)?,
            });
        }
        let Some(mode) = crate::modes::probe_modes().find(|mode| mode.name == name) else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("unknown mode `{name}`\n"),
            ));
        };
        Ok(ProbeMode {
            name: mode.name,
            args: ProbeArgs::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Subcommand for ProbeMode {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        crate::modes::probe_modes()
            .fold(cmd, |cmd, mode| {
                // the about after the arguments: a flattened struct's doc comment sets one too
                let sub = ProbeArgs::augment_args(clap::Command::new(mode.name))
                    .about(mode.about)
                    .after_help(PROBE_EXIT_CODES)
                    .mut_arg("listen", |a| a.hide(true));
                cmd.subcommand(sub)
            })
            .subcommand(
                ProbeArgs::augment_args(clap::Command::new(REACH))
                    .about(REACH_ABOUT)
                    .after_help(PROBE_EXIT_CODES),
            )
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        name == REACH || crate::modes::probe_modes().any(|mode| mode.name == name)
    }
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The task file (in a pod: the mounted ConfigMap).
    #[arg(long, env = "KPATROL_TASK")]
    pub task: PathBuf,
    /// Where the JSON summary (at most 4 KiB) goes. By default /dev/termination-log, and
    /// only when it exists (as in a pod), so runs outside a pod leave nothing behind.
    #[arg(long, env = "KPATROL_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
    /// reach only: where the agent serves its target and the launcher's control paths
    /// (default [::]:8080, every interface; only $POD_IPS with $KPATROL_LISTEN_POD_IPS set).
    #[arg(long, env = "KPATROL_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub opts: RoundOpts,
}

/// `kpatrol` entry point.
pub async fn kpatrol(cli: Kpatrol) -> Exit {
    match cli.command {
        Command::Validate { paths } => validate(&paths),
        Command::Run {
            file,
            opts,
            output,
            no_progress,
            agents,
            netns,
            impair,
            html,
        } => {
            let mesh = MeshFlags {
                agents,
                netns,
                impair,
                html,
            };
            run(
                &file,
                &opts,
                output,
                !no_progress && std::io::stderr().is_terminal(),
                &mesh,
            )
            .await
        }
        Command::Render { paths, output, image } => render(&paths, output.as_deref(), &image),
        Command::Apply {
            paths,
            image,
            set,
            dry_run,
            namespace,
            cluster,
        } => apply(&paths, &cluster.to(&image, set.as_deref(), namespace), dry_run).await,
        Command::Prune {
            paths,
            set,
            dry_run,
            namespace,
            cluster,
        } => {
            prune(
                &paths,
                &cluster.to(crate::render::DEFAULT_IMAGE, Some(&set), namespace),
                dry_run,
            )
            .await
        }
        Command::Diff {
            paths,
            image,
            set,
            namespace,
            cluster,
        } => diff(&paths, &cluster.to(&image, set.as_deref(), namespace)).await,
        Command::Status {
            namespace,
            output,
            cluster,
        } => status(namespace.as_deref(), output, &cluster.target()).await,
        Command::Report {
            task,
            namespace,
            output,
            html,
            cluster,
        } => report_cmd(&task, &namespace, output, html.as_deref(), &cluster.target()).await,
        Command::Round {
            task,
            agents_job,
            qps,
            duration,
            termination_log,
        } => round(&task, &agents_job, qps, duration, termination_log.as_deref()).await,
        Command::Serve { listen } => serve(&listen).await,
    }
}

/// `kpatrol-probe` entry point.
pub async fn probe(cli: Probe) -> Exit {
    let ProbeMode { name: mode, args } = cli.mode;
    let log = termination_path(args.termination_log.as_deref());
    crash_report_to(log.as_deref(), &args.task.display().to_string());
    test_panic();
    let plan = match load_one(&args.task, &args.opts, Some(mode)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kpatrol-probe: {e}");
            write_termination(
                log.as_deref(),
                &error_message(&args.task.display().to_string(), &e.to_string()),
            );
            return Exit::Trouble;
        }
    };
    let stop = match round_stop() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kpatrol-probe: {e}");
            write_termination(log.as_deref(), &error_message(&plan.name, &e.to_string()));
            return Exit::Trouble;
        }
    };
    let quit = watch_signals(stop.clone());
    if mode == REACH {
        return reach_agent(&plan, &args, log.as_deref(), stop, quit).await;
    }
    if args.listen.is_some() {
        let e = format!("--listen is for the mesh's agent (kpatrol-probe reach), not the {mode} mode");
        eprintln!("kpatrol-probe: {e}");
        write_termination(log.as_deref(), &error_message(&plan.name, &e));
        return Exit::Trouble;
    }
    // a counted task counts its round as it starts (agent 0 does), so a round that fails or
    // crashes counts too
    if std::env::var(crate::names::env::ROUNDS).is_ok()
        && std::env::var(crate::names::env::AGENT_INDEX).as_deref() == Ok("0")
    {
        match crate::cluster::client().await {
            Ok(client) => count_rounds(&client).await,
            Err(e) => eprintln!("kpatrol-probe: counting rounds: {e}"),
        }
    }
    let mounts = Mounts::new(&args.opts.mounts);
    let round = tokio::select! {
        r = crate::round::execute_round(&plan, &mounts, stop, None) => r,
        _ = quit.stopped() => {
            eprintln!("kpatrol-probe: {QUIT}");
            write_termination(log.as_deref(), &error_message(&plan.name, QUIT));
            return Exit::Trouble;
        }
    };
    match round {
        Ok(finished) => {
            // the report first: a slow collector must not cost the termination message
            match serde_json::to_string(&finished.report) {
                Ok(json) => outln!("{json}"),
                Err(e) => eprintln!("kpatrol-probe: the report did not serialise: {e}"),
            }
            write_termination(log.as_deref(), &finished.report.to_message());
            send_telemetry(&finished.plan, &finished).await;
            let crate::round::Finished { verdict, .. } = finished;
            if verdict.passed() { Exit::Ok } else { Exit::Fail }
        }
        Err(e) => {
            eprintln!("kpatrol-probe: could not run {}: {e}", plan.name);
            write_termination(log.as_deref(), &error_message(&plan.name, &e.to_string()));
            Exit::Trouble
        }
    }
}

/// `kpatrol-probe reach`: one agent of a mesh round. Its row goes to the launcher over the
/// control channel; the termination message is its own verdict, bounded.
async fn reach_agent(plan: &Plan, args: &ProbeArgs, log: Option<&Path>, stop: Stop, quit: Stop) -> Exit {
    use crate::modes::reach::agent;
    let opts = agent::AgentOptions {
        listen: match args.listen {
            Some(addr) => vec![addr],
            None => agent::listen_addrs(
                std::env::var(agent::POD_IPS_ENV).ok().as_deref(),
                std::env::var_os(agent::POD_IPS_ONLY_ENV).is_some(),
            ),
        },
        token: std::env::var(agent::TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        // the launcher sends orders at most a quarter of this after the first agent ran
        wait_orders: plan.round_timeout,
        linger: plan.round_timeout,
    };
    let mounts = Mounts::new(&args.opts.mounts);
    let ran = tokio::select! {
        r = agent::run(plan, &mounts, &opts, stop) => r,
        _ = quit.stopped() => {
            eprintln!("kpatrol-probe: {QUIT}");
            write_termination(log, &error_message(&plan.name, QUIT));
            return Exit::Trouble;
        }
    };
    match ran {
        Ok(p) => {
            let mut r = report::RoundReport::bare(
                &plan.name,
                if p.verdict.outcome == crate::judge::Outcome::Pass && !p.row.stopped {
                    report::RoundOutcome::Pass
                } else {
                    report::RoundOutcome::Fail
                },
            );
            r.kind = plan.kind.clone();
            r.mode = REACH.into();
            r.stopped = p.row.stopped;
            r.checks = p.verdict.checks;
            let pass = r.verdict == report::RoundOutcome::Pass;
            match serde_json::to_string(&r) {
                Ok(json) => outln!("{json}"),
                Err(e) => eprintln!("kpatrol-probe: the report did not serialise: {e}"),
            }
            write_termination(log, &r.to_message());
            if pass { Exit::Ok } else { Exit::Fail }
        }
        Err(e) => {
            eprintln!("kpatrol-probe: could not run {}: {e}", plan.name);
            write_termination(log, &error_message(&plan.name, &e.to_string()));
            Exit::Trouble
        }
    }
}

/// The termination log to write: the one given, or /dev/termination-log when it exists.
pub(super) fn termination_path(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("/dev/termination-log")).filter(|p| p.exists()),
    }
}

/// The termination message of a round that could not run, always valid JSON within the limit.
pub(super) fn error_message(task: &str, error: &str) -> String {
    report::RoundReport::could_not_run(task, error).to_message()
}

pub(super) fn write_termination(path: Option<&Path>, text: &str) {
    let Some(path) = path else { return };
    if let Err(e) = std::fs::write(path, text) {
        eprintln!(
            "kpatrol-probe: cannot write the termination log {}: {e}",
            path.display()
        );
    }
}

/// Ctrl-C and SIGTERM stop the round; what was measured is still judged. A second signal
/// quits at once: the returned [`Stop`] fires, and the caller abandons the round (the probe
/// still writes an `error` termination message).
pub(super) fn watch_signals(stop: Stop) -> Stop {
    let quit = Stop::new();
    let q = quit.clone();
    let mut signals = Signals::new();
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("stopping: finishing requests in flight, then reporting (Ctrl-C again to quit at once)");
        stop.stop();
        signals.next().await;
        eprintln!("quitting without a report");
        q.stop();
    });
    quit
}

/// Why a round could not start from the command line (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Load(#[from] task::LoadError),
    /// Every error of the task file, one per line.
    #[error("cannot run the task:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("{}: no task in this file", .0.display())]
    NoTask(PathBuf),
    #[error("{} holds {} tasks; pick one with --name (one of: {})", file.display(), names.len(), names.join(", "))]
    Ambiguous { file: PathBuf, names: Vec<String> },
    #[error("no task named `{name}` in {} (tasks: {})", file.display(), names.join(", "))]
    NoSuchTask {
        file: PathBuf,
        name: String,
        names: Vec<String>,
    },
    #[error("task {task} ({kind}) runs in mode `{mode}`, not `{asked}`")]
    WrongMode {
        task: String,
        kind: String,
        mode: &'static str,
        asked: String,
    },
    /// A command-line override that is not of its flag's type (its range is the plan's).
    #[error(transparent)]
    Override(#[from] task::FlagError),
    #[error("KPATROL_DRAIN is not a duration such as 20s")]
    Drain,
}

/// The stop of a round, with the drain `KPATROL_DRAIN` asks for (default 20 s: a pod's
/// grace period, as rendered, leaves 10 s more for the report and telemetry).
fn round_stop() -> Result<Stop, StartError> {
    match std::env::var("KPATROL_DRAIN") {
        Err(_) => Ok(Stop::new()),
        Ok(d) => parse_duration(&d).map(Stop::with_drain).ok_or(StartError::Drain),
    }
}

/// What a second signal leaves of a round.
const QUIT: &str = "quit by a second signal before the round was judged; no report";

/// `kpatrol validate`.
pub fn validate(paths: &[PathBuf]) -> Exit {
    check(paths, &task::Overrides::default(), |line| outln!("{line}")).0
}

/// Loads every task of `paths`, reporting every problem through `say`, with a summary line.
/// Returns the exit code `validate` would give and the tasks when all are valid.
pub(super) fn check(paths: &[PathBuf], overrides: &task::Overrides, mut say: impl FnMut(String)) -> (Exit, Vec<Plan>) {
    let (files, dirs_unreadable) = match task::collect(paths) {
        Ok(c) => (c.files, c.unreadable),
        Err(e) => {
            eprintln!("kpatrol: {e}");
            return (Exit::Trouble, vec![]);
        }
    };
    let (mut errors, mut warnings, mut unreadable) = (0, 0, dirs_unreadable.len());
    for e in &dirs_unreadable {
        say(e.to_string());
    }
    let mut plans: Vec<Plan> = Vec::new();
    for f in &files {
        match plan::load_file_with(f, overrides) {
            Err(e) => {
                say(e.to_string());
                unreadable += 1;
            }
            Ok(ft) => {
                let mut diags = ft.diagnostics;
                let missing = task::check_files(f, &ft.files);
                // a task naming a file that cannot be read is not valid: the task whose
                // document holds the field (the last to start at or before it)
                let invalid: Vec<usize> = missing
                    .iter()
                    .filter_map(|d| {
                        ft.plans
                            .iter()
                            .map(|p| p.origin.line)
                            .filter(|l| *l <= d.pos.line)
                            .max()
                    })
                    .collect();
                diags.extend(missing);
                for p in ft.plans {
                    if invalid.contains(&p.origin.line) {
                        continue; // reported: the task is not valid
                    }
                    if let Some(problem) = crate::render::pod::memory_problem(&p) {
                        diags.push(crate::diag::Diagnostic {
                            severity: Severity::Warning,
                            file: p.origin.file.clone(),
                            pos: p.origin.pos("spec.pressure"),
                            path: "spec.pressure".into(),
                            message: problem,
                            allowed: Some(crate::render::MEMORY_ALLOWED.into()),
                            suggestion: None,
                        });
                    }
                    // the Kubernetes objects passed through to the pod, read as render reads them
                    let mut pass = crate::diag::Diagnostics::new(&p.origin.file);
                    let passes = crate::render::pod::passthrough(&p, &mut pass).is_some();
                    diags.extend(pass.list);
                    if !passes {
                        continue; // reported: the task is not valid
                    }
                    let prev = plans
                        .iter()
                        .find(|q| (&q.namespace, &q.kind, &q.name) == (&p.namespace, &p.kind, &p.name));
                    if let Some(prev) = prev {
                        diags.push(crate::diag::Diagnostic {
                            severity: Severity::Error,
                            file: p.origin.file.clone(),
                            pos: p.origin.name_pos,
                            path: "metadata.name".into(),
                            message: format!(
                                "{} {}/{} is also defined in {}",
                                p.kind,
                                p.namespace,
                                p.name,
                                prev.origin.file.display()
                            ),
                            allowed: Some("one task per kind, namespace and name".into()),
                            suggestion: None,
                        });
                    } else {
                        plans.push(p);
                    }
                }
                diags.sort_by_key(|d| d.pos);
                for d in &diags {
                    say(d.to_string());
                    match d.severity {
                        Severity::Error => errors += 1,
                        Severity::Warning => warnings += 1,
                    }
                }
            }
        }
    }
    say(format!(
        "{} file(s), {} valid task(s), {errors} error(s), {warnings} warning(s){}",
        files.len(),
        plans.len(),
        if unreadable > 0 {
            format!(", {unreadable} file(s) unreadable")
        } else {
            String::new()
        }
    ));
    if unreadable > 0 {
        (Exit::Trouble, vec![])
    } else if errors > 0 {
        (Exit::Fail, vec![])
    } else {
        (Exit::Ok, plans)
    }
}

/// `kpatrol render`.
pub fn render(paths: &[PathBuf], output: Option<&Path>, image: &str) -> Exit {
    // an Argo CD plugin passes the Application's env with this prefix
    let argocd = std::env::var("ARGOCD_ENV_KPATROL_IMAGE").ok().filter(|i| !i.is_empty());
    let image = match argocd {
        Some(i) if image == crate::render::DEFAULT_IMAGE => i,
        _ => image.to_string(),
    };
    let image = image.as_str();
    let (exit, plans) = check(paths, &task::Overrides::default(), |line| eprintln!("{line}"));
    if exit != Exit::Ok {
        eprintln!("kpatrol: nothing rendered");
        return exit;
    }
    let opts = crate::render::RenderOptions {
        image: image.to_string(),
    };
    let rendered = match crate::render::render(&plans, &opts) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("kpatrol: {} problem(s); nothing rendered", errors.len());
            return Exit::Fail;
        }
    };
    for w in &rendered.warnings {
        eprintln!("{w}");
    }
    match output {
        None => {
            let docs: Vec<&String> = rendered
                .files
                .iter()
                .filter(|(k, _)| *k != "kustomization.yaml")
                .map(|(_, v)| v)
                .collect();
            let text: Vec<&str> = docs.iter().map(|d| d.as_str()).collect();
            out!("{}", text.join("---\n"));
            Exit::Ok
        }
        Some(dir) => match render_files(&rendered, dir) {
            Ok(()) => {
                let warned = match rendered.warnings.len() {
                    0 => String::new(),
                    n => format!(", with {n} warning(s) about running in pods (above)"),
                };
                eprintln!(
                    "kpatrol: rendered {} task(s) into {}{warned}",
                    plans.len(),
                    dir.display()
                );
                Exit::Ok
            }
            Err(e) => {
                eprintln!("kpatrol: cannot write {}: {e}; nothing changed", dir.display());
                Exit::Trouble
            }
        },
    }
}

/// Writes `rendered` into `dir` (`kpatrol render -o`; rendering itself is pure): all files go to a temporary directory beside it first and
/// replace `dir` only when every one was written. An existing `dir` is replaced only when
/// kpatrol rendered it (it holds the marker file).
pub fn render_files(rendered: &crate::render::Rendered, dir: &Path) -> std::io::Result<()> {
    const MARKER: &str = ".kpatrol-rendered";
    let here = std::env::current_dir().ok().and_then(|c| c.canonicalize().ok());
    let target = dir.canonicalize().ok();
    let holds_here = matches!((&here, &target), (Some(h), Some(t)) if h.starts_with(t));
    if dir.as_os_str().is_empty() || holds_here {
        return Err(std::io::Error::other(format!(
            "{} is the current directory (or holds it); render into a directory of its own, such as kustomize/base/tasks",
            dir.display()
        )));
    }
    if dir.exists() && !dir.join(MARKER).exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(std::io::Error::other(format!(
            "{} exists and was not rendered by kpatrol (no {MARKER}); render into an empty or new directory",
            dir.display()
        )));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("rendered");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        for (file, text) in &rendered.files {
            std::fs::write(tmp.join(file), text)?;
        }
        std::fs::write(
            tmp.join(MARKER),
            "Rendered by kpatrol render; the whole directory is replaced on the next render.\n",
        )?;
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&tmp, dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Loads the one task of `file` that a round runs, applies overrides, and checks its mode.
pub fn load_one(file: &Path, opts: &RoundOpts, mode: Option<&str>) -> Result<Plan, StartError> {
    let overrides = task::Overrides::from_flags(opts.qps.as_deref(), opts.duration.as_deref(), opts.max_in_flight)?;
    let ft = plan::load_file_with(file, &overrides)?;
    let mut errors: Vec<String> = ft
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    errors.extend(task::check_files(file, &ft.files).iter().map(|d| d.to_string()));
    let mut diags: Vec<_> = ft.diagnostics.iter().collect();
    diags.sort_by_key(|d| d.pos);
    errors.sort_by_key(|e| {
        ft.diagnostics
            .iter()
            .find(|d| d.to_string() == *e)
            .map(|d| d.pos)
            .unwrap_or_default()
    });
    if errors.is_empty() {
        for d in diags.iter().filter(|d| d.severity == Severity::Warning) {
            eprintln!("{d}");
        }
    }
    if !errors.is_empty() {
        return Err(StartError::Invalid(errors));
    }
    let mut plans = ft.plans;
    let plan = match (&opts.name, plans.len()) {
        (_, 0) => return Err(StartError::NoTask(file.to_path_buf())),
        (None, 1) => plans.remove(0),
        (None, _) => {
            return Err(StartError::Ambiguous {
                file: file.to_path_buf(),
                names: plans.iter().map(|p| p.name.clone()).collect(),
            });
        }
        (Some(n), _) => {
            let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
            let i = plans
                .iter()
                .position(|p| &p.name == n)
                .ok_or_else(|| StartError::NoSuchTask {
                    file: file.to_path_buf(),
                    name: n.clone(),
                    names,
                })?;
            plans.remove(i)
        }
    };
    if let Some(m) = mode
        && plan.mode.name() != m
    {
        return Err(StartError::WrongMode {
            task: plan.name,
            kind: plan.kind,
            mode: plan.mode.name(),
            asked: m.to_string(),
        });
    }
    Ok(plan)
}

/// What a round `kpatrol run` starts needs: its stop (Ctrl-C, SIGTERM), the quit signal
/// (a second one), and the mounts.
fn local_round(opts: &RoundOpts) -> Result<(Stop, Stop, Mounts), Exit> {
    let stop = round_stop().map_err(|e| {
        eprintln!("kpatrol: {e}");
        Exit::Trouble
    })?;
    let quit = watch_signals(stop.clone());
    Ok((stop, quit, Mounts::new(&opts.mounts)))
}

/// Prints a round's report as `output` asks: the table `table` makes, or `report` as JSON.
/// `false` when the JSON could not be made (said on stderr).
fn print_report<T: serde::Serialize>(output: Output, table: impl FnOnce() -> String, report: &T) -> bool {
    match output {
        Output::Table => out!("{}", table()),
        Output::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => outln!("{json}"),
            Err(e) => {
                eprintln!("kpatrol: the report did not serialise: {e}");
                return false;
            }
        },
    }
    true
}

/// `kpatrol run`'s flags for a mesh task.
struct MeshFlags {
    agents: Option<u32>,
    netns: bool,
    impair: Vec<String>,
    /// `--html FILE`: the matrix as an HTML page.
    html: Option<PathBuf>,
}

async fn run(file: &Path, opts: &RoundOpts, output: Output, progress: bool, mesh: &MeshFlags) -> Exit {
    let plan = match load_one(file, opts, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kpatrol: {e}");
            return Exit::Trouble;
        }
    };
    if let crate::modes::Mode::Reach(reach) = &plan.mode {
        return run_mesh(&plan, reach, opts, output, mesh).await;
    }
    if mesh.agents.is_some() || mesh.netns || !mesh.impair.is_empty() {
        eprintln!(
            "kpatrol: --agents, --netns and --impair are for a mesh (Mesh, kdoctor NetReach); {} is a {}",
            plan.name, plan.kind
        );
        return Exit::Trouble;
    }
    if mesh.html.is_some() {
        eprintln!(
            "kpatrol: --html draws a mesh's matrix (Mesh, kdoctor NetReach); {} is a {}",
            plan.name, plan.kind
        );
        return Exit::Trouble;
    }
    let (stop, quit, mounts) = match local_round(opts) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let mut line = progress::Progress::default();
    let watch: Option<&mut (dyn crate::round::Watch + Send)> = if progress { Some(&mut line) } else { None };
    let round = tokio::select! {
        r = crate::round::execute_round(&plan, &mounts, stop, watch) => r,
        _ = quit.stopped() => {
            eprintln!("kpatrol: {QUIT}");
            return Exit::Trouble;
        }
    };
    match round {
        Ok(finished) => {
            if !print_report(output, || report::table(&finished.report), &finished.report) {
                return Exit::Trouble;
            }
            send_telemetry(&finished.plan, &finished).await;
            if finished.verdict.passed() {
                Exit::Ok
            } else {
                Exit::Fail
            }
        }
        Err(e) => {
            eprintln!("kpatrol: could not run {}: {e}", plan.name);
            Exit::Trouble
        }
    }
}

/// A mesh round on loopback: its agents' cells judged as a matrix, the heatmap or JSON.
async fn run_mesh(
    plan: &Plan,
    reach: &crate::modes::reach::ReachPlan,
    opts: &RoundOpts,
    output: Output,
    mesh: &MeshFlags,
) -> Exit {
    use crate::modes::reach::local;
    let local = match local::Local::from_flags(mesh.agents, mesh.netns, &mesh.impair) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kpatrol: {e}");
            return Exit::Trouble;
        }
    };
    let (stop, quit, mounts) = match local_round(opts) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let report = tokio::select! {
        r = local::run(plan, reach, &local, &mounts, stop) => r,
        _ = quit.stopped() => {
            eprintln!("kpatrol: {QUIT}");
            return Exit::Trouble;
        }
    };
    match report {
        Ok(r) => {
            if !print_report(output, || r.table(), &r) {
                return Exit::Trouble;
            }
            if let Some(path) = &mesh.html
                && !write_html(path, &r)
            {
                return Exit::Trouble;
            }
            send_mesh_telemetry(plan, &r).await;
            if r.verdict == crate::judge::Outcome::Pass {
                Exit::Ok
            } else {
                Exit::Fail
            }
        }
        Err(e) => {
            eprintln!("kpatrol: could not run {}: {e}", plan.name);
            Exit::Trouble
        }
    }
}

/// Writes `r`'s matrix as an HTML page to `path`, atomically (a temporary file beside it,
/// then renamed over it, so a reader never sees half a page); `false` when it could not
/// (said on stderr with the path and the system's error).
fn write_html(path: &Path, r: &crate::report::mesh::MeshReport) -> bool {
    let Some(v) = &r.verdict_detail else {
        return true;
    };
    let page = report::html::heatmap_html(&r.task, &r.matrix, &r.expect, v);
    match write_atomically(path, page.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("kpatrol: cannot write {}: {e}", path.display());
            false
        }
    }
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`; on failure the
/// temporary file is removed and `path` is left as it was.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create_new(&tmp)?;
    let done = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

async fn serve(listen: &str) -> Exit {
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("kpatrol: --listen {listen}: expected an address and port such as 127.0.0.1:8080");
            return Exit::Trouble;
        }
    };
    let listener = match crate::probe::serve::listen(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kpatrol: cannot listen on {listen}: {e}");
            return Exit::Trouble;
        }
    };
    eprintln!("kpatrol: serving on http://{addr} (Ctrl-C or SIGTERM stops)");
    let stop = Stop::new();
    watch_stop_signals(stop.clone());
    match crate::probe::serve::serve(listener, stop).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("kpatrol: serve: {e}");
            Exit::Trouble
        }
    }
}

/// Ctrl-C and SIGTERM call `stop`.
fn watch_stop_signals(stop: Stop) {
    let mut signals = Signals::new();
    tokio::spawn(async move {
        signals.next().await;
        stop.stop();
    });
}

/// Ctrl-C and SIGTERM, listened to from creation on, so a second signal is never missed.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next Ctrl-C or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.int) => {}
                _ = one(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sends the round over OTLP when the OTEL_* variables ask for it. Bounded; a failure is one
/// line on stderr and changes nothing else.
/// The telemetry settings from the environment, `None` when off (a malformed one is warned
/// about on stderr).
fn telemetry_config() -> Option<crate::telemetry::Config> {
    match crate::telemetry::config_from(|k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(w) => {
            eprintln!("kpatrol: warning: telemetry off: {w}");
            None
        }
    }
}

async fn send_telemetry(plan: &Plan, f: &crate::round::Finished) {
    use crate::telemetry;
    let Some(cfg) = telemetry_config() else { return };
    let env = |k: &str| std::env::var(k).ok();
    let agent = telemetry::Agent::from_env(env);
    let ids = telemetry::trace_ids(
        env("TRACEPARENT").as_deref(),
        &agent.namespace,
        agent.job.as_deref(),
        agent.index,
    );
    if let Err(e) = telemetry::export(&cfg, plan, &f.report, &f.verdict, &f.round, &agent, &ids).await {
        eprintln!("kpatrol: telemetry not sent: {e} (the verdict stands)");
    }
}

/// A local mesh round's trace and metrics, when telemetry is on.
async fn send_mesh_telemetry(plan: &Plan, r: &crate::report::mesh::MeshReport) {
    use crate::telemetry;
    let Some(cfg) = telemetry_config() else { return };
    let ids = telemetry::trace_ids(std::env::var("TRACEPARENT").ok().as_deref(), "", None, 0);
    if let Err(e) = telemetry::mesh::export(&cfg, plan, r, &ids).await {
        eprintln!("kpatrol: telemetry not sent: {e} (the verdict stands)");
    }
}
