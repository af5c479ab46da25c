//! The commands that talk to a cluster: apply, diff, prune, status, report and the
//! per-node round launcher. Glue only: the decisions live in `crate::cluster`.

use std::path::{Path, PathBuf};

use super::{
    DEFAULT_MOUNTS, Exit, Output, RoundOpts, check, error_message, load_one, report, termination_path,
    write_termination,
};
use crate::names::env;
use crate::plan::Plan;

/// What the cluster commands apply, and where: the image, the set (`--set`), the namespace
/// of tasks that name none (`-n`), the cluster.
pub(super) struct To<'a> {
    pub image: &'a str,
    pub set: Option<&'a str>,
    pub namespace: Option<String>,
    pub cluster: crate::cluster::Target,
}

/// Loads and renders every task for the cluster commands, labelled with the set when one is
/// given; prints problems.
fn rendered_objects(paths: &[PathBuf], to: &To) -> Result<(Vec<Plan>, Vec<serde_json::Value>), Exit> {
    if let Some(set) = to.set
        && let Some(p) = set_problem(set)
    {
        eprintln!("kpatrol: --set {set}: {p}");
        return Err(Exit::Trouble);
    }
    let overrides = crate::task::Overrides {
        namespace: to.namespace.clone(),
        ..Default::default()
    };
    if let Some(ns) = &to.namespace
        && let Some(p) = crate::task::dns_label_problem(ns, 63)
    {
        eprintln!("kpatrol: -n {ns}: not a valid namespace: {p}");
        return Err(Exit::Trouble);
    }
    let (exit, plans) = check(paths, &overrides, |line| eprintln!("{line}"));
    if exit != Exit::Ok {
        return Err(exit);
    }
    match crate::render::render(
        &plans,
        &crate::render::RenderOptions {
            image: to.image.to_string(),
        },
    ) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("{w}");
            }
            let mut objects = crate::cluster::apply::namespaces(&r.objects);
            objects.extend(r.objects);
            if let Some(set) = to.set {
                objects = crate::cluster::apply::in_set(&objects, set);
            }
            Ok((plans, objects))
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Err(Exit::Fail)
        }
    }
}

/// Why a set name is refused: it is a label value, and not empty.
fn set_problem(set: &str) -> Option<String> {
    if set.is_empty() {
        return Some("a set needs a name".into());
    }
    crate::task::k8s::label_value_problem(set)
        .map(|p| format!("{p} (allowed: {})", crate::task::k8s::LABEL_VALUE_ALLOWED))
}

async fn connect(target: &crate::cluster::Target) -> Result<kube::Client, Exit> {
    crate::cluster::client_for(target).await.map_err(|e| {
        eprintln!("kpatrol: {e}");
        Exit::Trouble
    })
}

/// Applies `paths` (or, with `dry_run`, asks the server what applying would do), printing
/// each object's change as `say` words it; after an error, says what was applied and what
/// stopped it.
async fn apply_all(
    paths: &[PathBuf],
    to: &To<'_>,
    dry_run: bool,
    mut say: impl FnMut(&str, &crate::cluster::apply::Change),
) -> Result<usize, Exit> {
    let (_, objects) = rendered_objects(paths, to)?;
    let client = connect(&to.cluster).await?;
    if let Err(e) = crate::cluster::check_version(&client).await {
        eprintln!("kpatrol: {e}; nothing was applied");
        return Err(Exit::Trouble);
    }
    let applied = crate::cluster::apply::apply(&client, &objects, dry_run).await;
    let mut changed = 0;
    for (name, change) in &applied.changes {
        if *change != crate::cluster::apply::Change::Unchanged {
            changed += 1;
        }
        say(name, change);
    }
    if let Some(e) = applied.error {
        let done = applied.changes.len();
        eprintln!(
            "kpatrol: {e}\nkpatrol: stopped at object {} of {}: the {done} above were {}, the {} after it were not",
            done + 1,
            objects.len(),
            if dry_run { "checked" } else { "applied" },
            objects.len().saturating_sub(done + 1)
        );
        return Err(Exit::Trouble);
    }
    Ok(changed)
}

/// `kpatrol apply`.
pub(super) async fn apply(paths: &[PathBuf], to: &To<'_>, dry_run: bool) -> Exit {
    use crate::cluster::apply::Change;
    let result = apply_all(paths, to, dry_run, |name, change| {
        let what = match (change, dry_run) {
            (Change::Create, false) => "created".to_string(),
            (Change::Create, true) => "would be created".to_string(),
            (Change::Update(fields), false) => format!("updated ({})", fields.join(", ")),
            (Change::Update(fields), true) => format!("would be updated ({})", fields.join(", ")),
            (Change::Unchanged, _) => "unchanged".to_string(),
        };
        outln!("{name} {what}");
    })
    .await;
    match result {
        Ok(_) => Exit::Ok,
        Err(e) => e,
    }
}

/// `kpatrol diff`.
pub(super) async fn diff(paths: &[PathBuf], to: &To<'_>) -> Exit {
    use crate::cluster::apply::Change;
    let result = apply_all(paths, to, true, |name, change| match change {
        Change::Create => outln!("+ {name}"),
        Change::Update(fields) => outln!("~ {name}: {}", fields.join(", ")),
        Change::Unchanged => {}
    })
    .await;
    match result {
        Ok(0) => Exit::Ok,
        Ok(_) => Exit::Fail,
        Err(e) => e,
    }
}

/// `kpatrol prune`.
pub(super) async fn prune(paths: &[PathBuf], to: &To<'_>, dry_run: bool) -> Exit {
    let (_, objects) = match rendered_objects(paths, to) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let client = match connect(&to.cluster).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let set = to.set.unwrap_or_default();
    let pruned = crate::cluster::apply::prune(&client, &objects, set, dry_run).await;
    for g in &pruned.deleted {
        outln!("{g} {}", if dry_run { "would be deleted" } else { "deleted" });
    }
    if let Some(e) = pruned.error {
        eprintln!(
            "kpatrol: prune stopped: {e}; the {} above were deleted",
            pruned.deleted.len()
        );
        return Exit::Trouble;
    }
    if pruned.deleted.is_empty() {
        outln!("nothing to prune in set {set}");
    }
    Exit::Ok
}

/// `kpatrol round`: the in-cluster launcher of per-node tasks.
pub(super) async fn round(
    task: &Path,
    agents_job: &Path,
    qps: Option<String>,
    duration: Option<String>,
    log: Option<&Path>,
) -> Exit {
    let log = termination_path(log);
    super::crash_report_to(log.as_deref(), &task.display().to_string());
    let fail = |msg: String| {
        eprintln!("kpatrol round: {msg}");
        write_termination(log.as_deref(), &error_message(&task.display().to_string(), &msg));
        Exit::Trouble
    };
    let opts = RoundOpts {
        name: None,
        mounts: PathBuf::from(DEFAULT_MOUNTS),
        qps: qps.clone(),
        duration: duration.clone(),
        max_in_flight: None,
    };
    let plan = match load_one(task, &opts, None) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let template: serde_json::Value = match std::fs::read_to_string(agents_job)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_yaml_ng::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => return fail(format!("agents' Job template {}: {e}", agents_job.display())),
    };
    let node_selector = match &plan.agents.placement {
        crate::plan::Placement::PerNode { node_selector } => node_selector.clone(),
        crate::plan::Placement::Count(_) => Default::default(),
    };
    let mut forward = Vec::new();
    for (flag, value) in [("--qps", qps), ("--duration", duration)] {
        if let Some(v) = value {
            forward.push(flag.to_string());
            forward.push(v);
        }
    }
    let client = match crate::cluster::client().await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    count_rounds(&client).await;
    // SIGTERM (the Job's deletion or deadline): stop waiting, judge and report what came
    let stop = crate::pressure::Stop::new();
    let quit = super::watch_signals(stop.clone());
    let namespace = std::env::var(env::NAMESPACE).unwrap_or_else(|_| plan.namespace.clone());
    let own_job = std::env::var(env::JOB_NAME).ok().filter(|s| !s.is_empty());
    // the round's trace: the launcher's `round` span is the agents' parent
    let ids = crate::telemetry::trace_ids(None, &namespace, own_job.as_deref(), 0);
    let started = std::time::SystemTime::now();
    let launch = crate::cluster::round::Launch {
        namespace,
        node_selector,
        template,
        forward,
        env: vec![("TRACEPARENT".into(), crate::telemetry::traceparent(&ids))],
        own_job: own_job.clone(),
        own_pod: std::env::var(env::POD_NAME).ok().filter(|s| !s.is_empty()),
        deadline: plan.round_timeout + std::time::Duration::from_secs(60),
        stop: stop.clone(),
    };
    if let crate::modes::Mode::Reach(reach) = &plan.mode {
        return mesh_round(&client, &launch, &plan, reach, &ids, log.as_deref(), &quit).await;
    }
    let verdict = tokio::select! {
        v = crate::cluster::round::launch(&client, &launch) => match v {
            Ok(v) => v,
            Err(e) => return fail(e.to_string()),
        },
        // a second signal: no verdict, but still a message
        _ = quit.stopped() => return fail("quit by a second signal before the round was judged".into()),
    };
    if verdict.could_not_run {
        // every agent exited 2: say why the first could not run, and exit 2 as they did
        let why = verdict
            .agents
            .iter()
            .find_map(|a| match &a.message {
                Some(report::Message::Report(r)) => r.error.as_ref().map(|e| format!("{}: {e}", a.node)),
                _ => None,
            })
            .unwrap_or_else(|| "no agent said why".into());
        return fail(format!(
            "no agent could run ({} of {}); {why}",
            verdict.agents.len(),
            verdict.expected
        ));
    }
    let report = verdict.report(&plan, started, started.elapsed().unwrap_or_default());
    match serde_json::to_string(&report) {
        Ok(text) => outln!("{text}"),
        Err(e) => return fail(format!("the report as JSON: {e}")),
    }
    // the message before telemetry: a slow collector must not cost it
    write_termination(log.as_deref(), &report.to_message());
    match crate::telemetry::config_from(|k| std::env::var(k).ok()) {
        Ok(Some(cfg)) => {
            let problems = (!verdict.pass).then(|| {
                format!(
                    "{} agent(s) missing ({}), failed on: {}",
                    verdict.missing,
                    verdict.missing_nodes.join(", "),
                    verdict.failed_nodes.join(", ")
                )
            });
            let span = crate::telemetry::launcher_span(
                &ids,
                &plan,
                own_job.as_deref().unwrap_or("local"),
                verdict.pass,
                problems,
                started,
                std::time::SystemTime::now(),
            );
            if let Err(e) = crate::telemetry::export_launcher_span(&cfg, &plan, span).await {
                eprintln!("kpatrol round: telemetry not sent: {e} (the verdict stands)");
            }
        }
        Ok(None) => {}
        Err(w) => eprintln!("kpatrol round: warning: telemetry off: {w}"),
    }
    if let Some(kib) = peak_rss_kib() {
        // the launcher's own limit is 64Mi: say how close a round came
        eprintln!("kpatrol round: peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }
    if verdict.pass { Exit::Ok } else { Exit::Fail }
}

/// A mesh round in the cluster: the whole matrix judged by the launcher, printed as JSON,
/// its summary as the termination message, its trace and metrics when telemetry is on.
async fn mesh_round(
    client: &kube::Client,
    launch: &crate::cluster::round::Launch,
    plan: &crate::plan::Plan,
    reach: &crate::modes::reach::ReachPlan,
    ids: &crate::telemetry::TraceIds,
    log: Option<&Path>,
    quit: &crate::pressure::Stop,
) -> Exit {
    let task = plan.name.clone();
    let fail = |msg: String| {
        eprintln!("kpatrol round: {msg}");
        write_termination(log, &error_message(&task, &msg));
        Exit::Trouble
    };
    let r = tokio::select! {
        r = crate::cluster::mesh::launch(client, launch, plan, reach) => match r {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        },
        _ = quit.stopped() => return fail("quit by a second signal before the round was judged".into()),
    };
    eprint!("{}", r.table());
    match serde_json::to_string(&r) {
        Ok(text) => outln!("{text}"),
        Err(e) => return fail(format!("the report as JSON: {e}")),
    }
    let pass = r.verdict == crate::judge::Outcome::Pass;
    let mut summary = report::RoundReport::bare(
        &plan.name,
        if pass {
            report::RoundOutcome::Pass
        } else {
            report::RoundOutcome::Fail
        },
    );
    summary.namespace = launch.namespace.clone();
    summary.kind = plan.kind.clone();
    summary.mode = "reach".into();
    summary.stopped = r.stopped;
    summary.duration_seconds = r.duration_seconds;
    summary.checks = r.checks.clone();
    write_termination(log, &summary.to_message());
    match crate::telemetry::config_from(|k| std::env::var(k).ok()) {
        Ok(Some(cfg)) => {
            if let Err(e) = crate::telemetry::mesh::export(&cfg, plan, &r, ids).await {
                eprintln!("kpatrol round: telemetry not sent: {e} (the verdict stands)");
            }
        }
        Ok(None) => {}
        Err(w) => eprintln!("kpatrol round: warning: telemetry off: {w}"),
    }
    if pass { Exit::Ok } else { Exit::Fail }
}

/// This process's peak resident memory (`VmHWM`), where /proc tells it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// At a round's start: counts it on its CronJob, and the last of `rounds: N` suspends the
/// CronJob ([`env::ROUNDS`], [`env::CRONJOB`] and [`env::JOB_NAME`] come from the rendered
/// pod; only agent 0 or the launcher counts). A failure here is logged and changes no verdict.
pub(super) async fn count_rounds(client: &kube::Client) {
    let (Ok(rounds), Ok(cronjob), Ok(ns)) = (
        std::env::var(env::ROUNDS),
        std::env::var(env::CRONJOB),
        std::env::var(env::NAMESPACE),
    ) else {
        return;
    };
    let Ok(rounds) = rounds.parse::<u64>() else { return };
    let job = std::env::var(env::JOB_NAME).unwrap_or_default();
    match tokio::time::timeout(
        std::time::Duration::from_secs(15),
        crate::cluster::round::count_round(client, &ns, &cronjob, &job, rounds),
    )
    .await
    {
        Ok(Ok(crate::cluster::round::Counted::Round { n, last: true })) => {
            eprintln!("kpatrol: round {n} of {rounds}, the last: CronJob {cronjob} suspended")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("kpatrol: counting rounds: {e}"),
        Err(_) => eprintln!("kpatrol: counting rounds timed out"),
    }
}

/// `kpatrol status`.
pub(super) async fn status(namespace: Option<&str>, output: Output, target: &crate::cluster::Target) -> Exit {
    let client = match connect(target).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    match crate::cluster::status::status(&client, namespace).await {
        Ok(tasks) => {
            match output {
                Output::Table if tasks.is_empty() => outln!("no kpatrol tasks found"),
                Output::Table => out!("{}", crate::cluster::status::status_table(&tasks)),
                Output::Json => return print_json(&tasks, Exit::Ok),
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("kpatrol: {e}");
            Exit::Trouble
        }
    }
}

/// `kpatrol report TASK`.
pub(super) async fn report_cmd(
    task: &str,
    namespace: &str,
    output: Output,
    html: Option<&Path>,
    target: &crate::cluster::Target,
) -> Exit {
    let client = match connect(target).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    match crate::cluster::status::report(&client, namespace, task).await {
        Ok(detail) => {
            // a mesh's round kept its matrix: the heatmap below the table, and --html
            let matrix = kept_matrix(&client, namespace, &detail.job).await;
            if let Some(path) = html {
                let written = matrix.as_ref().map_err(String::clone).and_then(|m| {
                    let page = report::html::heatmap_html(&m.0, &m.1, &m.2, &m.3);
                    super::write_atomically(path, page.as_bytes())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                });
                if let Err(e) = written {
                    eprintln!("kpatrol: --html: {e}");
                    return Exit::Trouble;
                }
            }
            match output {
                Output::Table => {
                    out!("{}", crate::cluster::status::report_table(&detail));
                    if let Ok((_, m, e, v)) = &matrix {
                        out!("\n{}", report::heatmap::heatmap(m, e, v));
                    }
                }
                Output::Json => return print_json(&detail, detail_exit(&detail)),
            }
            detail_exit(&detail)
        }
        Err(e) => {
            eprintln!("kpatrol: {e}");
            Exit::Trouble
        }
    }
}

/// Round `job`'s matrix (the ConfigMap a mesh's launcher kept), judged again: the task, the
/// matrix, the expectations and the verdict; why not when there is none.
async fn kept_matrix(
    client: &kube::Client,
    namespace: &str,
    job: &str,
) -> Result<
    (
        String,
        crate::judge::matrix::Matrix,
        crate::judge::matrix::CellExpect,
        crate::judge::matrix::MatrixVerdict,
    ),
    String,
> {
    use crate::report::mesh::MatrixRecord;
    let name = crate::cluster::mesh::matrix_config_map(job);
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let cm = api
        .get_opt(&name)
        .await
        .map_err(|e| format!("ConfigMap {namespace}/{name}: {e}"))?
        .ok_or_else(|| {
            format!(
                "round {job} kept no matrix (ConfigMap {namespace}/{name}): only a mesh's rounds do (Mesh, NetReach), when their matrix fits a ConfigMap"
            )
        })?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(MatrixRecord::KEY))
        .ok_or_else(|| format!("ConfigMap {namespace}/{name} has no {}", MatrixRecord::KEY))?;
    let record: MatrixRecord = serde_json::from_str(text).map_err(|e| format!("ConfigMap {namespace}/{name}: {e}"))?;
    let (matrix, expect) = (record.matrix(), record.expect());
    let verdict = crate::judge::matrix::judge_matrix(&expect, &matrix);
    Ok((record.task, matrix, expect, verdict))
}

fn detail_exit(detail: &crate::cluster::status::RoundDetail) -> Exit {
    if detail.verdict == crate::cluster::status::JobVerdict::Fail {
        Exit::Fail
    } else {
        Exit::Ok
    }
}

/// Prints `v` as pretty JSON and exits with `exit`; a value that cannot be serialised
/// (none of these can: plain structs with string keys) could not be reported (exit 2).
fn print_json(v: &impl serde::Serialize, exit: Exit) -> Exit {
    match serde_json::to_string_pretty(v) {
        Ok(text) => {
            outln!("{text}");
            exit
        }
        Err(e) => {
            eprintln!("kpatrol: as JSON: {e}");
            Exit::Trouble
        }
    }
}
