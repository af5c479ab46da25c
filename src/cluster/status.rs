//! `kpatrol status` and `kpatrol report`: the last rounds read back from the cluster (the
//! CronJobs and Jobs kpatrol manages, and their pods' termination messages).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::round::{AgentResult, POD_PAGE, agents_of, finished};
use super::{ClusterError, MANAGED};
use crate::judge::Subject;
use crate::names::label;
use crate::report::Message;

/// What became of a task's last round, as its Job tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum JobVerdict {
    #[serde(rename = "pass")]
    Pass,
    #[serde(rename = "fail")]
    Fail,
    #[serde(rename = "running")]
    Running,
    /// No round yet.
    #[serde(rename = "-")]
    NoRound,
}

impl JobVerdict {
    /// `pass`, `fail`, `running`, or `-`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobVerdict::Pass => "pass",
            JobVerdict::Fail => "fail",
            JobVerdict::Running => "running",
            JobVerdict::NoRound => "-",
        }
    }
}

impl std::fmt::Display for JobVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task as `kpatrol status` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    pub namespace: String,
    pub task: String,
    pub kind: String,
    /// The cron expression, or `once` for a single-round Job.
    pub schedule: String,
    pub suspended: bool,
    /// Rounds started, as counted on the CronJob of a task with `rounds: N`; `None` for a
    /// task that runs until removed (its old Jobs go with the history limits).
    pub rounds_done: Option<u64>,
    /// N of `rounds: N`.
    pub rounds: Option<u64>,
    /// `pass`, `fail`, `running`, or `-` before the first round (of the Jobs still kept).
    pub last_verdict: JobVerdict,
    /// RFC 3339 time the last round ended (or started, while running).
    pub last_round: Option<String>,
    /// The Job of the last round (for `kpatrol report`).
    pub last_job: Option<String>,
    /// When the CronJob last started a round, and last saw one succeed (its status: these
    /// outlive the Jobs).
    pub last_scheduled: Option<String>,
    pub last_success: Option<String>,
}

fn label(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<String> {
    meta.labels.as_ref().and_then(|l| l.get(key)).cloned()
}

fn round_jobs(jobs: &[Job]) -> Vec<&Job> {
    // a round's Job: started by a CronJob or by apply (not the agents' Job a launcher starts)
    jobs.iter()
        .filter(|j| {
            !j.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "Job"))
        })
        .collect()
}

fn verdict_of(job: &Job) -> JobVerdict {
    if !finished(job) {
        return JobVerdict::Running;
    }
    let failed = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
        || job.status.as_ref().and_then(|s| s.failed).unwrap_or(0) > 0;
    if failed { JobVerdict::Fail } else { JobVerdict::Pass }
}

/// When a round ended (a failed Job by its Failed condition, which has no completion
/// time), or started while it runs.
fn when(job: &Job) -> Option<String> {
    let s = job.status.as_ref()?;
    let failed_at = s
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref());
    s.completion_time
        .as_ref()
        .or(failed_at)
        .or(s.start_time.as_ref())
        .map(|t| t.0.to_string())
}

/// Every task from its CronJob (or single-round Job) and its rounds' Jobs. Pure.
pub fn summarize(cronjobs: &[CronJob], jobs: &[Job]) -> Vec<TaskStatus> {
    let mut tasks: BTreeMap<(String, String), TaskStatus> = BTreeMap::new();
    for c in cronjobs {
        let ns = c.metadata.namespace.clone().unwrap_or_default();
        let task = label(&c.metadata, label::TASK)
            .or(c.metadata.name.clone())
            .unwrap_or_default();
        let spec = c.spec.as_ref();
        let annotation = |k: &str| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let rounds = annotation(crate::names::annotation::ROUNDS);
        let status = c.status.as_ref();
        tasks.insert(
            (ns.clone(), task.clone()),
            TaskStatus {
                namespace: ns,
                task,
                kind: label(&c.metadata, label::KIND).unwrap_or_default(),
                schedule: spec.map(|s| s.schedule.clone()).unwrap_or_default(),
                suspended: spec.and_then(|s| s.suspend).unwrap_or(false),
                // counted on the CronJob when the task has a round count
                rounds_done: rounds.map(|_| annotation(super::round::ROUNDS_DONE).unwrap_or(0)),
                rounds,
                last_verdict: JobVerdict::NoRound,
                last_round: None,
                last_job: None,
                last_scheduled: status
                    .and_then(|s| s.last_schedule_time.as_ref())
                    .map(|t| t.0.to_string()),
                last_success: status
                    .and_then(|s| s.last_successful_time.as_ref())
                    .map(|t| t.0.to_string()),
            },
        );
    }
    let mut rounds = round_jobs(jobs);
    rounds.sort_by_key(|j| j.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0));
    for j in rounds {
        let ns = j.metadata.namespace.clone().unwrap_or_default();
        let Some(task) = label(&j.metadata, label::TASK) else {
            continue;
        };
        let entry = tasks.entry((ns.clone(), task.clone())).or_insert_with(|| TaskStatus {
            namespace: ns,
            task,
            kind: label(&j.metadata, label::KIND).unwrap_or_default(),
            schedule: "once".into(),
            suspended: false,
            rounds_done: Some(1),
            rounds: Some(1),
            last_verdict: JobVerdict::NoRound,
            last_round: None,
            last_job: None,
            last_scheduled: None,
            last_success: None,
        });
        entry.last_verdict = verdict_of(j);
        entry.last_round = when(j);
        entry.last_job = j.metadata.name.clone();
    }
    tasks.into_values().collect()
}

/// The status table. Pure.
pub fn status_table(tasks: &[TaskStatus]) -> String {
    let mut rows = vec![
        [
            "NAMESPACE",
            "TASK",
            "KIND",
            "SCHEDULE",
            "ROUNDS",
            "LAST",
            "WHEN",
            "LAST SUCCESS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for t in tasks {
        rows.push(vec![
            t.namespace.clone(),
            t.task.clone(),
            t.kind.clone(),
            if t.suspended {
                format!("{} (suspended)", t.schedule)
            } else {
                t.schedule.clone()
            },
            match (t.rounds_done, t.rounds) {
                (Some(done), Some(n)) => format!("{done}/{n}"),
                _ => "-".into(),
            },
            t.last_verdict.to_string(),
            t.last_round
                .clone()
                .or_else(|| t.last_scheduled.clone())
                .unwrap_or_else(|| "-".into()),
            t.last_success.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows)
}

fn table(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// The last round of a task in full: every agent's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundDetail {
    pub namespace: String,
    pub task: String,
    pub job: String,
    pub verdict: JobVerdict,
    pub agents: Vec<AgentResult>,
}

/// The report table: one line per agent with its summary and failing checks. Pure.
pub fn report_table(d: &RoundDetail) -> String {
    let out = format!(
        "{}/{}: round {} {}\n\n",
        d.namespace,
        d.task,
        d.job,
        d.verdict.as_str().to_uppercase()
    );
    let mut rows = vec![
        ["NODE", "POD", "EXIT", "VERDICT", "TARGETS", "FAILED CHECKS"]
            .map(String::from)
            .to_vec(),
    ];
    for a in &d.agents {
        let (verdict, targets, failed) = match &a.message {
            Some(Message::Report(r)) => {
                let targets = match &r.agents {
                    Some(g) => vec![format!(
                        "{} agents, {} missing, {} failed{}",
                        g.expected,
                        g.missing,
                        g.failed,
                        if g.skipped > 0 {
                            format!(", {} skipped", g.skipped)
                        } else {
                            String::new()
                        }
                    )],
                    None => r
                        .targets
                        .iter()
                        .map(|t| {
                            let p99 = t
                                .latency_ms
                                .map_or("-".into(), |l| format!("{}ms", l.p99.as_micros() as f64 / 1000.0));
                            format!("{} sent {} ok {} p99 {p99}", t.name, t.sent, t.succeeded)
                        })
                        .collect(),
                };
                let failed = r
                    .error
                    .iter()
                    .cloned()
                    .chain(r.checks.iter().filter(|c| !c.pass).map(|c| match &c.subject {
                        Subject::Agent(node) => format!("{node} {}", c.observed),
                        _ => format!("{} {}: {} (want {})", c.subject, c.measure, c.observed, c.threshold),
                    }))
                    .chain(r.agents.iter().flat_map(|g| {
                        g.skipped_nodes
                            .iter()
                            .map(|s| format!("{}: {} (skipped)", s.node, s.why))
                    }))
                    .collect();
                (r.verdict.as_str(), targets, failed)
            }
            // an older or newer kpatrol, or a crash the kubelet logged: shown as it is
            Some(Message::Text(text)) => ("-", vec![], vec![one_line(text)]),
            None => ("-", vec![], vec![]),
        };
        rows.push(vec![
            a.node.clone(),
            a.pod.clone(),
            a.exit_code.map_or("-".into(), |c| c.to_string()),
            verdict.to_string(),
            targets.join("; "),
            if failed.is_empty() {
                "-".into()
            } else {
                failed.join("; ")
            },
        ]);
    }
    out + &table(&rows)
}

/// A pod's text on one line of a table, at most 200 characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", line.get(..i).unwrap_or_default()),
        None => line,
    }
}

fn api_err(kind: &str, e: kube::Error) -> ClusterError {
    ClusterError::Api {
        kind: kind.into(),
        name: "list".into(),
        source: e,
    }
}

/// Lists kpatrol's CronJobs and Jobs (in `namespace`, or everywhere) and summarizes them.
pub async fn status(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<TaskStatus>, ClusterError> {
    let (cj, jobs): (Api<CronJob>, Api<Job>) = match namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let lp = ListParams::default().labels(MANAGED);
    let cronjobs = cj.list(&lp).await.map_err(|e| api_err("CronJob", e))?.items;
    let jobs = jobs.list(&lp).await.map_err(|e| api_err("Job", e))?.items;
    Ok(summarize(&cronjobs, &jobs))
}

/// The last round of `task` in `namespace`: its Job's pods and their termination messages
/// (for a launcher's round, the agents' Job).
pub async fn report(client: &kube::Client, namespace: &str, task: &str) -> Result<RoundDetail, ClusterError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let all = jobs
        .list(&ListParams::default().labels(&format!("{}={task}", label::TASK)))
        .await
        .map_err(|e| api_err("Job", e))?
        .items;
    let mut rounds = round_jobs(&all);
    rounds.sort_by_key(|j| j.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0));
    let last = rounds.last().ok_or_else(|| ClusterError::NoRounds {
        namespace: namespace.into(),
        task: task.into(),
    })?;
    let name = last.metadata.name.clone().unwrap_or_default();
    // a launcher's agents run in the Jobs it owns (a second or third for nodes the first
    // left without an agent), named after the first
    let mut agents_jobs: Vec<String> = all
        .iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "Job" && r.name == name))
        })
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    agents_jobs.sort();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    // a launcher's round: its own line first (agents, missing, skipped nodes), then its
    // agents; otherwise the round Job's own pods
    let mut agents = agents_of(&pods, &name, POD_PAGE).await?;
    for job in agents_jobs {
        agents.extend(agents_of(&pods, &job, POD_PAGE).await?);
    }
    Ok(RoundDetail {
        namespace: namespace.into(),
        task: task.into(),
        job: name,
        verdict: verdict_of(last),
        agents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(name: &str, task: &str, start: &str, status: Value, owner: Option<&str>) -> Job {
        let mut meta = json!({"name": name, "namespace": "kpatrol", "labels": {"kpatrol.dev/task": task, "kpatrol.dev/kind": "HttpCheck"}});
        if let Some(o) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": o, "name": "x", "uid": "u"}]);
        }
        let mut st = status;
        st["startTime"] = json!(start);
        serde_json::from_value(json!({"metadata": meta, "spec": {"completions": 1, "template": {"spec": {"containers": []}}}, "status": st})).unwrap()
    }

    fn cj_counted() -> CronJob {
        serde_json::from_value(
            json!({"metadata": {"name": "reg", "namespace": "kpatrol", "labels": {"kpatrol.dev/task": "reg"}},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
        )
        .unwrap()
    }

    #[test]
    fn status_counts_rounds_and_reads_the_last_verdict() {
        let cj: CronJob = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "kpatrol", "labels": {"kpatrol.dev/task": "web", "kpatrol.dev/kind": "HttpCheck"}},
            "spec": {"schedule": "*/10 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}})).unwrap();
        let jobs = vec![
            job(
                "web-1",
                "web",
                "2026-11-25T01:00:00Z",
                json!({"succeeded": 1, "completionTime": "2026-11-25T01:00:40Z"}),
                Some("CronJob"),
            ),
            job(
                "web-2",
                "web",
                "2026-11-25T01:10:00Z",
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2026-11-25T01:11:00Z"}]}),
                Some("CronJob"),
            ),
            job(
                "web-2-agents",
                "web",
                "2026-11-25T01:10:01Z",
                json!({"succeeded": 3}),
                Some("Job"),
            ),
            job("once", "dns", "2026-11-25T02:00:00Z", json!({"active": 1}), None),
        ];
        let s = summarize(&[cj], &jobs);
        assert_eq!(s.len(), 2);
        let web = s.iter().find(|t| t.task == "web").unwrap();
        assert_eq!(
            (web.rounds_done, web.last_verdict.as_str(), web.last_job.as_deref()),
            (None, "fail", Some("web-2")),
            "no `rounds: N`, no count: the Jobs kept are not all the rounds"
        );
        assert_eq!(
            web.last_round.as_deref(),
            Some("2026-11-25T01:11:00Z"),
            "a failed round ended when it failed"
        );
        assert_eq!(web.schedule, "*/10 * * * *");
        let dns = s.iter().find(|t| t.task == "dns").unwrap();
        assert_eq!(
            (dns.schedule.as_str(), dns.rounds_done, dns.last_verdict.as_str()),
            ("once", Some(1), "running")
        );
        let text = status_table(&s);
        assert!(text.starts_with("NAMESPACE  TASK  KIND       SCHEDULE"), "{text}");
        assert!(text.contains("web   HttpCheck  */10 * * * *  -       fail"), "{text}");
        // a counted task: its count and N, from the CronJob
        let mut counted = cj_counted();
        counted.metadata.annotations = Some(
            [("kpatrol.dev/rounds", "5"), ("kpatrol.dev/rounds-done", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let s = summarize(&[counted], &[]);
        assert_eq!((s[0].rounds_done, s[0].rounds), (Some(3), Some(5)));
        assert!(status_table(&s).contains(" 3/5 "), "{}", status_table(&s));
    }
}
