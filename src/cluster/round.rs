//! The per-round launcher (`kpatrol round`) for tasks whose agents follow the nodes: it
//! lists the matching nodes (in pages) and keeps those the agents can run on, starts that
//! round's Indexed Job with one agent per node, watches it until it finishes, its deadline
//! (from the launcher's own Job's start) passes or SIGTERM comes, gathers the agents'
//! termination messages, and judges the round as a whole by distinct nodes. Also round
//! counting: as the last of `rounds: N` starts, the CronJob is suspended.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ClusterError, TemplateError};
use crate::judge::{Check, Measure, Outcome, Subject};
use crate::names::{annotation, label};
use crate::plan::Plan;
use crate::report::{AgentsReport, Message, RoundReport, SkippedNode, read_message};

/// One agent's outcome, read from its pod.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentResult {
    pub node: String,
    pub pod: String,
    /// The probe's exit code (0 pass, 1 fail, 2 could not run); `None` while it runs.
    pub exit_code: Option<i32>,
    /// The probe's termination message: its summary, or whatever text the pod left.
    pub message: Option<Message>,
}

/// The round as a whole.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundVerdict {
    pub pass: bool,
    /// Nodes that could take an agent.
    pub expected: usize,
    pub agents: Vec<AgentResult>,
    /// How many expected nodes did not report, and which.
    pub missing: usize,
    pub missing_nodes: Vec<String>,
    pub failed_nodes: Vec<String>,
    /// Nodes the task's selector matches that cannot take an agent, and why (a taint the
    /// agents do not tolerate, cordoned, another OS or architecture).
    pub skipped: Vec<(String, String)>,
    /// Every agent that reported could not run (exit 2): the round could not run either.
    pub could_not_run: bool,
}

/// Judges a round from its agents: it passes when every expected node reported, and every
/// report passed. Nodes count once each, however many pods ran there. Pure.
pub fn judge(expected: &[String], skipped: Vec<(String, String)>, agents: Vec<AgentResult>) -> RoundVerdict {
    let reported: std::collections::BTreeSet<&str> = agents
        .iter()
        .filter(|a| a.exit_code.is_some())
        .map(|a| a.node.as_str())
        .collect();
    let missing_nodes: Vec<String> = expected
        .iter()
        .filter(|n| !reported.contains(n.as_str()))
        .cloned()
        .collect();
    let mut failed_nodes: Vec<String> = agents
        .iter()
        .filter(|a| a.exit_code.is_some_and(|c| c != 0))
        .map(|a| a.node.clone())
        .collect();
    failed_nodes.dedup();
    let codes: Vec<i32> = agents.iter().filter_map(|a| a.exit_code).collect();
    let could_not_run = !codes.is_empty() && codes.iter().all(|c| *c == 2);
    RoundVerdict {
        could_not_run,
        pass: missing_nodes.is_empty() && failed_nodes.is_empty() && !expected.is_empty(),
        expected: expected.len(),
        agents,
        missing: missing_nodes.len(),
        missing_nodes,
        failed_nodes,
        skipped,
    }
}

impl RoundVerdict {
    /// The launcher's report of its round: the agents counted by node, and one check per
    /// expected node (its agent's verdict, or that it did not report), failing ones first.
    pub fn report(&self, plan: &Plan, started: SystemTime, elapsed: Duration) -> RoundReport {
        let exit_of: BTreeMap<&str, i32> = self
            .agents
            .iter()
            .filter_map(|a| Some((a.node.as_str(), a.exit_code?)))
            // a node's worst exit counts (pods of a node retried, or more than one)
            .fold(BTreeMap::new(), |mut m, (n, c)| {
                let e = m.entry(n).or_insert(c);
                *e = (*e).max(c);
                m
            });
        let check = |node: &str, observed: String| Check {
            subject: Subject::Agent(node.into()),
            measure: Measure::Verdict,
            pass: observed == "pass",
            observed,
            threshold: "pass".into(),
        };
        // missing nodes, then failed ones (the judge's failed nodes: a worst exit other
        // than 0), then those that passed, each once
        let failed = exit_of.iter().filter(|(_, c)| **c != 0);
        let passed = exit_of.iter().filter(|(_, c)| **c == 0);
        let checks: Vec<Check> = self
            .missing_nodes
            .iter()
            .map(|n| check(n, "no report".into()))
            .chain(failed.chain(passed).map(|(n, c)| {
                let observed = match c {
                    0 => "pass".to_string(),
                    1 => "fail (exit 1)".into(),
                    c => format!("could not run (exit {c})"),
                };
                check(n, observed)
            }))
            .collect();
        let started_at: chrono::DateTime<chrono::Utc> = started.into();
        RoundReport {
            namespace: plan.namespace.clone(),
            kind: plan.kind.clone(),
            mode: "round".into(),
            started: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            duration_seconds: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            agents: Some(AgentsReport {
                expected: self.expected,
                reported: self.expected - self.missing,
                missing: self.missing,
                failed: self.failed_nodes.len(),
                skipped: self.skipped.len(),
                skipped_nodes: self
                    .skipped
                    .iter()
                    .map(|(node, why)| SkippedNode {
                        node: node.clone(),
                        why: why.clone(),
                    })
                    .collect(),
            }),
            checks,
            ..RoundReport::bare(&plan.name, Outcome::of(self.pass).into())
        }
    }
}

/// What the scheduler looks at on a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// (key, value, effect)
    pub taints: Vec<(String, String, String)>,
    pub unschedulable: bool,
    /// Its InternalIP addresses (where its NodePorts answer).
    pub addresses: Vec<std::net::IpAddr>,
}

impl NodeFacts {
    pub fn of(n: &Node) -> NodeFacts {
        let spec = n.spec.as_ref();
        NodeFacts {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .map(|ts| {
                    ts.iter()
                        .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default(), t.effect.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            addresses: n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .map(|a| {
                    a.iter()
                        .filter(|a| a.type_ == "InternalIP")
                        .filter_map(|a| a.address.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Why the agents' pod (`template`, a Job spec) cannot run on `node`, as the scheduler
/// decides: its nodeSelector, its required node affinity, and the node's NoSchedule and
/// NoExecute taints (a cordoned node's among them) against its tolerations. `None` when it
/// can. Pure.
pub fn cannot_run(template: &Value, node: &NodeFacts) -> Option<String> {
    let pod = super::at(template, &["template", "spec"])?;
    if let Some(sel) = pod.get("nodeSelector").and_then(Value::as_object) {
        for (k, v) in sel {
            let want = v.as_str().unwrap_or_default();
            if node.labels.get(k).map(String::as_str) != Some(want) {
                return Some(format!("label {k}={want} missing"));
            }
        }
    }
    let tolerations: Vec<&Value> = pod
        .get("tolerations")
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let mut taints = node.taints.clone();
    if node.unschedulable {
        taints.push((
            "node.kubernetes.io/unschedulable".into(),
            String::new(),
            "NoSchedule".into(),
        ));
    }
    for (key, value, effect) in &taints {
        if effect == "PreferNoSchedule" {
            continue;
        }
        let tolerated = tolerations.iter().any(|t| {
            let s = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or_default();
            let key_ok = s("key").is_empty() || s("key") == key;
            let value_ok = s("operator") == "Exists" || s("value") == value;
            let effect_ok = s("effect").is_empty() || s("effect") == effect;
            key_ok && value_ok && effect_ok
        });
        if !tolerated {
            return Some(if key == "node.kubernetes.io/unschedulable" {
                "cordoned".into()
            } else if value.is_empty() {
                format!("taint {key}:{effect} not tolerated")
            } else {
                format!("taint {key}={value}:{effect} not tolerated")
            });
        }
    }
    let terms = super::at(
        pod,
        &[
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        ],
    )
    .and_then(Value::as_array);
    if let Some(terms) = terms
        && !terms.is_empty()
        && !terms.iter().any(|t| term_matches(t, &node.labels))
    {
        return Some("required node affinity not met".into());
    }
    None
}

/// Whether a nodeSelectorTerm's matchExpressions all hold for `labels` (matchFields, on the
/// node's name only, are taken as met).
fn term_matches(term: &Value, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.get("matchExpressions").and_then(Value::as_array);
    exprs.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = labels.get(key).map(String::as_str);
        let number = |s: &str| s.parse::<i64>().ok();
        match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            "Gt" => have
                .and_then(number)
                .zip(values.first().and_then(|v| number(v)))
                .is_some_and(|(h, v)| h > v),
            "Lt" => have
                .and_then(number)
                .zip(values.first().and_then(|v| number(v)))
                .is_some_and(|(h, v)| h < v),
            _ => false,
        }
    })
}

/// Scopes the one-agent-per-node rule to this round: the anti-affinity term kpatrol renders
/// (matching the task's probes) matches this round's Job only, so a stuck agent of an
/// earlier round cannot keep a node from this one. Pure.
pub fn scope_to_round(template: &mut Value, job: &str) {
    let terms = template
        .pointer_mut("/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array_mut);
    for t in terms.into_iter().flatten() {
        let ours = t
            .pointer("/labelSelector/matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(label::TASK) && m.get(label::COMPONENT) == Some(&json!("probe")));
        if ours && let Some(sel) = t.get_mut("labelSelector") {
            *sel = json!({"matchLabels": {label::JOB_NAME: job}});
        }
    }
}

/// The agents' Job: the rendered template with one completion per node, the launcher's
/// overrides forwarded to each probe and `env` (the round's trace) added. Pure.
///
/// The template is a mounted file a user may have patched: one that is not a Job spec with
/// a container is an error, not a panic.
pub fn agents_job(
    template: &Value,
    name: &str,
    namespace: &str,
    nodes: usize,
    forward: &[String],
    env: &[(String, String)],
    owner: Option<&Job>,
) -> Result<Value, ClusterError> {
    let mut spec = template.clone();
    let fields = spec.as_object_mut().ok_or(TemplateError::NotAMapping)?;
    fields.insert("completions".into(), json!(nodes));
    fields.insert("parallelism".into(), json!(nodes));
    let container = first_container(&mut spec).ok_or(TemplateError::NoContainer)?;
    if let Some(args) = container.get_mut("args").and_then(Value::as_array_mut) {
        args.extend(forward.iter().map(|a| json!(a)));
    }
    if !env.is_empty() {
        let list = container.entry("env").or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            list.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
        }
    }
    let labels = super::at(&spec, &["template", "metadata", "labels"])
        .cloned()
        .unwrap_or(Value::Null);
    let meta = match owner.and_then(|o| o.metadata.name.as_ref().zip(o.metadata.uid.as_ref())) {
        Some((owner_name, uid)) => json!({"name": name, "namespace": namespace, "labels": labels,
        "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": owner_name, "uid": uid,
            "controller": true,
        }]}),
        None => json!({"name": name, "namespace": namespace, "labels": labels}),
    };
    Ok(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}))
}

/// The first container of a Job spec (`template.spec.containers[0]`), when there is one.
fn first_container(spec: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    spec.get_mut("template")?
        .get_mut("spec")?
        .get_mut("containers")?
        .get_mut(0)?
        .as_object_mut()
}

/// The object at `path` in `v`, created where missing or null (as `v["a"]["b"]` assigned
/// to would), or `None` where a value on the way is something else.
fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut v = v;
    for k in path {
        if v.is_null() {
            *v = Value::Object(serde_json::Map::new());
        }
        v = v.as_object_mut()?.entry(*k).or_insert(Value::Null);
    }
    if v.is_null() {
        *v = Value::Object(serde_json::Map::new());
    }
    v.as_object_mut()
}

/// The agents' Job name: unique per round, short enough that `<name>-<index>` pod hostnames
/// stay within 63 characters. Pure.
pub fn agents_job_name(own_job: Option<&str>, now: std::time::SystemTime) -> String {
    let own = match own_job {
        Some(o) => o.to_string(),
        None => format!(
            "kpatrol-{}",
            now.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        ),
    };
    let head: String = own.chars().take(38).collect();
    format!(
        "{}-{:08x}-a",
        head.trim_end_matches('-'),
        crate::render::fnv(&own) as u32
    )
}

/// What an overlay set on the launcher reaches its agents (the agents' Job template is a
/// file in the task's ConfigMap, which kustomize patches do not touch): the launcher's image,
/// its own labels (not the Job's), its imagePullSecrets and priorityClassName when the
/// template has none, its tolerations added to the template's, and env entries of its
/// container that the template's container does not name. Resources are the task's own
/// (`agents.resources`): a launcher's are not an agent's. Pure.
pub fn inherit(template: &mut Value, launcher: &Pod) {
    let spec = launcher.spec.as_ref();
    let container = spec.and_then(|s| s.containers.first());
    if let Some(image) = container.and_then(|c| c.image.clone())
        && let Some(c) = first_container(template)
    {
        c.insert("image".into(), json!(image));
    }
    if let Some(env) = container.and_then(|c| c.env.as_ref())
        && let Some(c) = first_container(template)
    {
        let list = c.entry("env").or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            let named: std::collections::BTreeSet<String> = list
                .iter()
                .filter_map(|e| e.get("name").and_then(Value::as_str).map(String::from))
                .collect();
            list.extend(
                env.iter()
                    .filter(|e| !named.contains(&e.name))
                    .filter_map(|e| serde_json::to_value(e).ok()),
            );
        }
    }
    if let Some(pod) = object_at(template, &["template", "spec"]) {
        if let Some(secrets) = spec
            .and_then(|s| s.image_pull_secrets.as_ref())
            .filter(|s| !s.is_empty())
        {
            pod.entry("imagePullSecrets").or_insert_with(|| json!(secrets));
        }
        if let Some(class) = spec.and_then(|s| s.priority_class_name.as_ref()) {
            pod.entry("priorityClassName").or_insert_with(|| json!(class));
        }
        if let Some(tolerations) = spec.and_then(|s| s.tolerations.as_ref()) {
            let list = pod.entry("tolerations").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                for t in tolerations.iter().filter_map(|t| serde_json::to_value(t).ok()) {
                    if !list.contains(&t) {
                        list.push(t);
                    }
                }
            }
        }
    }
    let own: Vec<(&String, &String)> = launcher
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            let job_owned = k.starts_with("batch.kubernetes.io/")
                || *k == "controller-uid"
                || *k == "job-name"
                || *k == label::COMPONENT;
            !job_owned
        })
        .collect();
    // only a launcher with labels of its own creates the template's labels
    if !own.is_empty()
        && let Some(labels) = object_at(template, &["template", "metadata", "labels"])
    {
        for (k, v) in own {
            labels.entry(k.as_str()).or_insert_with(|| json!(v));
        }
    }
}

/// Reads agents from the pods of their Job. Pure.
pub fn agents_from_pods(pods: &[Pod]) -> Vec<AgentResult> {
    let mut out: Vec<AgentResult> = pods
        .iter()
        .map(|p| {
            let terminated = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.terminated.as_ref());
            AgentResult {
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                pod: p.metadata.name.clone().unwrap_or_default(),
                exit_code: terminated.map(|t| t.exit_code),
                message: terminated.and_then(|t| t.message.as_ref()).map(|m| read_message(m)),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.node, &a.pod).cmp(&(&b.node, &b.pod)));
    out
}

/// Whether a Job has finished. Pure.
pub fn finished(job: &Job) -> bool {
    let Some(status) = &job.status else { return false };
    let done = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
    });
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    done || status.succeeded.unwrap_or(0) + status.failed.unwrap_or(0) >= completions
}

/// What the launcher needs to run one round.
pub struct Launch {
    pub namespace: String,
    pub node_selector: BTreeMap<String, String>,
    pub template: Value,
    pub forward: Vec<String>,
    /// Environment for every agent (the round's W3C `TRACEPARENT`).
    pub env: Vec<(String, String)>,
    /// The launcher's own Job (the owner of the agents' Job), when known.
    pub own_job: Option<String>,
    /// The launcher's own pod: the agents run its image and carry its labels (so kustomize's
    /// `images` and `labels` reach them).
    pub own_pod: Option<String>,
    /// How long a round may take from the launcher's Job's start (from now when that is
    /// not known): the round's timeout and a minute for scheduling and reports.
    pub deadline: Duration,
    /// Fires on SIGTERM: the launcher stops waiting, judges what reported, and reports.
    pub stop: crate::pressure::Stop,
}

pub(super) fn api_err(kind: &str, name: &str, e: kube::Error) -> ClusterError {
    ClusterError::Api {
        kind: kind.into(),
        name: name.into(),
        source: e,
    }
}

/// A round's start, before its agents' Job: the nodes the agents can run on (and those
/// they cannot, with why), the Job's name and template (the launcher's image and labels
/// inherited), its owner and the round's deadline.
pub(super) struct Start {
    pub eligible: Vec<NodeFacts>,
    pub skipped: Vec<(String, String)>,
    pub name: String,
    pub template: Value,
    pub owner: Option<Job>,
    pub until: tokio::time::Instant,
}

/// Lists the matching nodes (in pages), keeps those the agents can run on, and reads the
/// launcher's own Job and pod. `eligible` is empty when no node can take an agent.
pub(super) async fn start(client: &kube::Client, l: &Launch) -> Result<Start, ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let selector: Vec<String> = l.node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // nodes in pages, each reduced at once to what scheduling looks at
    let mut facts = Vec::new();
    let mut lp = ListParams::default().limit(NODE_PAGE);
    if !selector.is_empty() {
        lp = lp.labels(&selector.join(","));
    }
    in_pages(&nodes, lp, |page| facts.extend(page.iter().map(NodeFacts::of)))
        .await
        .map_err(|e| api_err("Node", "list", e))?;
    let (mut eligible, mut skipped) = (Vec::new(), Vec::new());
    for f in facts {
        match cannot_run(&l.template, &f) {
            None => eligible.push(f),
            Some(why) => skipped.push((f.name, why)),
        }
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &l.namespace);
    let owner = match (&l.own_job, eligible.is_empty()) {
        (Some(name), false) => jobs.get_opt(name).await.map_err(|e| api_err("Job", name, e))?,
        _ => None,
    };
    let name = agents_job_name(l.own_job.as_deref(), std::time::SystemTime::now());
    let mut template = l.template.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &l.namespace);
    if let Some(pod_name) = l.own_pod.as_ref().filter(|_| !eligible.is_empty())
        && let Some(own) = pods.get_opt(pod_name).await.map_err(|e| api_err("Pod", pod_name, e))?
    {
        inherit(&mut template, &own);
    }
    // the deadline runs from the launcher's own Job's start, not from now
    let started = owner
        .as_ref()
        .and_then(|o| o.status.as_ref())
        .and_then(|s| s.start_time.as_ref())
        .and_then(|t| {
            let age = std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::from(t.0))
                .ok()?;
            tokio::time::Instant::now().checked_sub(age)
        })
        .unwrap_or_else(tokio::time::Instant::now);
    Ok(Start {
        eligible,
        skipped,
        name,
        template,
        owner,
        until: started + l.deadline,
    })
}

/// Runs one round: nodes, Job, wait, gather, judge.
pub async fn launch(client: &kube::Client, l: &Launch) -> Result<RoundVerdict, ClusterError> {
    let Start {
        eligible,
        skipped,
        name,
        template,
        owner,
        until,
    } = start(client, l).await?;
    let eligible: Vec<String> = eligible.into_iter().map(|f| f.name).collect();
    if eligible.is_empty() {
        return Ok(judge(&eligible, skipped, vec![]));
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &l.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &l.namespace);
    let mut agents = Vec::new();
    let mut missing = eligible.clone();
    for attempt in 0..=CATCH_UPS {
        // The scheduler keeps one agent per node only among running pods: an agent that
        // finished before the last was placed frees its node, and on a large cluster (pods
        // are created over a minute) a second agent may land there while another node gets
        // none. Such nodes get their agents in a Job of their own, pinned to them.
        let job_name = match attempt {
            0 => name.clone(),
            k => format!("{name}{}", k + 1),
        };
        let mut template = template.clone();
        scope_to_round(&mut template, &job_name);
        if attempt > 0 {
            eprintln!(
                "kpatrol round: {} node(s) got no agent (another node took two); starting theirs in Job {job_name}",
                missing.len()
            );
            pin_to_nodes(&mut template, &missing);
        }
        let job_value = agents_job(
            &template,
            &job_name,
            &l.namespace,
            missing.len(),
            &l.forward,
            &l.env,
            owner.as_ref(),
        )?;
        let job: Job = serde_json::from_value(job_value).map_err(TemplateError::NotAJob)?;
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            Err(e) if attempt == 0 => return Err(api_err("Job", &job_name, e)),
            // the nodes stay missing: the round is judged as it is
            Err(e) => {
                eprintln!("kpatrol round: {}", api_err("Job", &job_name, e));
                break;
            }
        }
        let ended = tokio::select! {
            j = wait_finished(&jobs, &job_name) => Some(j),
            _ = tokio::time::sleep_until(until) => {
                eprintln!("kpatrol round: the deadline passed; judging the agents that reported");
                None
            }
            _ = l.stop.stopped() => {
                eprintln!("kpatrol round: stopping; judging the agents that reported");
                None
            }
        };
        // a pinned Job's pods carry a node affinity term per node: fewer of them per page
        let page = if attempt == 0 { POD_PAGE } else { PINNED_POD_PAGE };
        agents.extend(agents_of(&pods, &job_name, page).await?);
        let reported: std::collections::BTreeSet<&str> = agents
            .iter()
            .filter(|a| a.exit_code.is_some())
            .map(|a| a.node.as_str())
            .collect();
        missing.retain(|n| !reported.contains(n.as_str()));
        // only a Job whose every agent passed leaves nodes that were never tried; a failed
        // one (an agent evicted, a node gone) is judged as it is
        let all_passed = ended.is_some_and(|j| j.status.and_then(|s| s.failed).unwrap_or(0) == 0);
        if missing.is_empty() || !all_passed {
            break;
        }
    }
    agents.sort_by(|a, b| (&a.node, &a.pod).cmp(&(&b.node, &b.pod)));
    Ok(judge(&eligible, skipped, agents))
}

/// Jobs at most that start the agents of nodes a round's first Job left without one.
const CATCH_UPS: usize = 4;

/// The agents' pods of Job `job` in pages, each reduced at once to what the judge reads.
pub(super) async fn agents_of(pods: &Api<Pod>, job: &str, page: u32) -> Result<Vec<AgentResult>, ClusterError> {
    let lp = ListParams::default()
        .labels(&format!("{}={job}", label::JOB_NAME))
        .limit(page);
    let mut agents = Vec::new();
    in_pages(pods, lp, |page| agents.extend(agents_from_pods(page)))
        .await
        .map_err(|e| api_err("Pod", "list", e))?;
    Ok(agents)
}

/// Lists `api` in pages of `lp`'s limit, handing each page to `take` before the next is
/// read, so only one page is held at a time.
pub(super) async fn in_pages<K>(api: &Api<K>, mut lp: ListParams, mut take: impl FnMut(&[K])) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    loop {
        let page = api.list(&lp).await?;
        take(&page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(()),
        }
    }
}

/// Pins the agents' pod (`template`, a Job spec) to `nodes`, as the DaemonSet controller
/// pins its pods: a node affinity term per node (`matchFields` on `metadata.name` takes one
/// value), each ANDed with every term of the task's own (ORed) required node affinity. Pure.
pub fn pin_to_nodes(template: &mut Value, nodes: &[String]) {
    let Some(spec) = template.pointer_mut("/template/spec").and_then(Value::as_object_mut) else {
        return;
    };
    let required = spec
        .entry("affinity")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(|a| a.entry("nodeAffinity").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .map(|n| {
            n.entry("requiredDuringSchedulingIgnoredDuringExecution")
                .or_insert_with(|| json!({}))
        })
        .and_then(Value::as_object_mut)
        .map(|r| r.entry("nodeSelectorTerms").or_insert_with(|| json!([])))
        .and_then(Value::as_array_mut);
    let Some(terms) = required else { return };
    let own: Vec<Value> = match terms.is_empty() {
        true => vec![json!({})],
        false => terms.clone(),
    };
    *terms = nodes
        .iter()
        .flat_map(|node| {
            own.iter().map(move |t| {
                let mut t = t.clone();
                let fields = t
                    .as_object_mut()
                    .map(|m| m.entry("matchFields").or_insert_with(|| json!([])))
                    .and_then(Value::as_array_mut);
                if let Some(f) = fields {
                    f.push(json!({"key": "metadata.name", "operator": "In", "values": [node]}));
                }
                t
            })
        })
        .collect();
}

/// Agents' pods per list call.
pub(super) const POD_PAGE: u32 = 100;

/// Agents' pods per list call for a Job pinned to nodes (each pod holds every name).
const PINNED_POD_PAGE: u32 = 10;

/// Nodes per list call.
const NODE_PAGE: u32 = 200;

/// Returns Job `name` once it has finished, on a watch; a failed call is retried with
/// backoff (bounded by the caller's deadline), never the end of the round.
async fn wait_finished(jobs: &Api<Job>, name: &str) -> Job {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(200);
    loop {
        let rv = match jobs.get(name).await {
            Ok(j) if finished(&j) => return j,
            Ok(j) => j.metadata.resource_version.unwrap_or_default(),
            Err(e) => {
                eprintln!("kpatrol round: reading Job {name}: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let wp = kube::api::WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(60);
        match jobs.watch(&wp, &rv).await {
            Ok(events) => {
                let mut events = events.boxed();
                while let Some(e) = events.next().await {
                    match e {
                        Ok(kube::api::WatchEvent::Added(j) | kube::api::WatchEvent::Modified(j)) if finished(&j) => {
                            return j;
                        }
                        Ok(_) => backoff = Duration::from_millis(200),
                        // a broken or expired watch: read the Job again
                        Err(_) => break,
                    }
                }
            }
            Err(e) => {
                eprintln!("kpatrol round: watching Job {name}: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The annotation on a CronJob counting its rounds started.
pub const ROUNDS_DONE: &str = annotation::ROUNDS_DONE;
/// The annotation naming the Job of the last round counted, so a retried pod of the same
/// round does not count it twice.
pub const LAST_ROUND: &str = annotation::LAST_ROUND;

/// The merge patch that counts the round of Job `job` on a CronJob whose annotations are
/// `annotations` (at `resource_version`, a precondition: a concurrent count makes the patch
/// fail with 409 rather than be lost), suspending the CronJob when it starts the last of
/// `rounds`. `None` when this round was counted already. Pure.
pub fn round_patch(
    annotations: Option<&BTreeMap<String, String>>,
    resource_version: &str,
    job: &str,
    rounds: u64,
) -> Option<Value> {
    let get = |k: &str| annotations.and_then(|a| a.get(k));
    if !job.is_empty() && get(LAST_ROUND).is_some_and(|last| last == job) {
        return None;
    }
    let done = get(ROUNDS_DONE).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
    let metadata = json!({
        "resourceVersion": resource_version,
        "annotations": {ROUNDS_DONE: done.to_string(), LAST_ROUND: job},
    });
    Some(if done >= rounds {
        json!({"metadata": metadata, "spec": {"suspend": true}})
    } else {
        json!({"metadata": metadata})
    })
}

/// What counting a round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Counted as round `n`; `last` when it is the last, and the CronJob is now suspended.
    Round { n: u64, last: bool },
    /// This Job's round was counted before (a retried pod).
    Already,
}

/// At a round's start: counts it on the CronJob, and when it is the last of `rounds`
/// suspends the CronJob (the round itself still runs). Counting at the start makes a task
/// with a persistent fault stop too; the resourceVersion precondition, retried on 409, makes
/// two rounds counted at once count twice.
pub async fn count_round(
    client: &kube::Client,
    namespace: &str,
    cronjob: &str,
    job: &str,
    rounds: u64,
) -> Result<Counted, ClusterError> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let mut tries = 0;
    loop {
        tries += 1;
        let cj = cronjobs
            .get(cronjob)
            .await
            .map_err(|e| api_err("CronJob", cronjob, e))?;
        let rv = cj.metadata.resource_version.clone().unwrap_or_default();
        let Some(patch) = round_patch(cj.metadata.annotations.as_ref(), &rv, job, rounds) else {
            return Ok(Counted::Already);
        };
        let n = patch
            .pointer(&format!("/metadata/annotations/{}", ROUNDS_DONE.replace('/', "~1")))
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let last = patch.get("spec").is_some();
        match cronjobs
            .patch(cronjob, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(Counted::Round { n, last }),
            // another round counted in between: read again
            Err(kube::Error::Api(s)) if s.code == 409 && tries < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
            }
            Err(e) => return Err(api_err("CronJob", cronjob, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(node: &str, code: Option<i32>) -> AgentResult {
        AgentResult {
            node: node.into(),
            pod: format!("p-{node}"),
            exit_code: code,
            message: None,
        }
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_round_passes_only_when_every_node_reported_a_pass() {
        assert!(
            judge(
                &nodes(&["a", "b"]),
                vec![],
                vec![agent("a", Some(0)), agent("b", Some(0))]
            )
            .pass
        );
        let v = judge(
            &nodes(&["a", "b", "c"]),
            vec![],
            vec![agent("a", Some(0)), agent("b", Some(1)), agent("c", None)],
        );
        assert!(!v.pass);
        assert_eq!(
            (v.missing_nodes.clone(), v.failed_nodes.clone()),
            (nodes(&["c"]), nodes(&["b"]))
        );
        assert!(!judge(&[], vec![], vec![]).pass, "no node matched: nothing was checked");
        let v = judge(
            &nodes(&["a", "b"]),
            vec![],
            vec![agent("a", Some(2)), agent("b", Some(2))],
        );
        assert!(
            !v.pass && v.could_not_run,
            "every agent could not run: neither could the round"
        );
        assert!(
            !judge(
                &nodes(&["a", "b"]),
                vec![],
                vec![agent("a", Some(2)), agent("b", Some(1))]
            )
            .could_not_run
        );
        // two reports from one node do not stand in for another node
        let v = judge(
            &nodes(&["a", "b"]),
            vec![],
            vec![agent("a", Some(0)), agent("a", Some(0))],
        );
        assert!(!v.pass);
        assert_eq!(v.missing_nodes, nodes(&["b"]));
    }

    #[test]
    fn the_launchers_report_names_each_node_that_failed_or_did_not_report() {
        let text = "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: web, namespace: ops}\nspec:\n  agents: {perNode: {}}\n  targets: [{url: \"http://a/\"}]\n";
        let plan = crate::plan::load_str(std::path::Path::new("t.yaml"), text)
            .unwrap()
            .plans
            .remove(0);
        let v = judge(
            &nodes(&["a", "b", "c", "d"]),
            vec![("e".into(), "cordoned".into())],
            vec![
                agent("a", Some(0)),
                agent("b", Some(1)),
                agent("d", Some(2)),
                agent("d", Some(0)),
            ],
        );
        let r = v.report(&plan, SystemTime::UNIX_EPOCH, Duration::from_millis(1500));
        assert_eq!(r.verdict, crate::report::RoundOutcome::Fail);
        assert_eq!(
            (r.task.as_str(), r.namespace.as_str(), r.mode.as_str()),
            ("web", "ops", "round")
        );
        let a = r.agents.as_ref().unwrap();
        assert_eq!(
            (a.expected, a.reported, a.missing, a.failed, a.skipped),
            (4, 3, 1, 2, 1)
        );
        let checks: Vec<(String, &str, bool)> = r
            .checks
            .iter()
            .map(|c| (c.subject.to_string(), c.observed.as_str(), c.pass))
            .collect();
        assert_eq!(
            checks,
            [
                ("agent c".to_string(), "no report", false),
                ("agent b".into(), "fail (exit 1)", false),
                ("agent d".into(), "could not run (exit 2)", false),
                ("agent a".into(), "pass", true),
            ]
        );
        // it reads back from its termination message as written
        assert_eq!(read_message(&r.to_message()), Message::Report(Box::new(r)));
    }

    #[test]
    fn agents_pinned_to_nodes_keep_the_tasks_own_node_affinity() {
        let field = |n: &str| json!({"key": "metadata.name", "operator": "In", "values": [n]});
        let terms_of = |t: &Value| {
            t.pointer(
                "/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
            )
            .cloned()
        };
        let mut bare = json!({"template": {"spec": {"containers": [{"name": "probe"}]}}});
        pin_to_nodes(&mut bare, &nodes(&["n2", "n7"]));
        // one name per term: the API server refuses more than one value for matchFields
        assert_eq!(
            terms_of(&bare),
            Some(json!([{"matchFields": [field("n2")]}, {"matchFields": [field("n7")]}]))
        );
        // every term of the task's own (ORed) terms, for each name
        let own = json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
        ]);
        let mut t = json!({"template": {"spec": {"affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": own}},
            "podAntiAffinity": {"x": 1}}}}});
        pin_to_nodes(&mut t, &nodes(&["n2", "n7"]));
        let zone = |z: &str| json!([{"key": "zone", "operator": "In", "values": [z]}]);
        assert_eq!(
            terms_of(&t),
            Some(json!([
                {"matchExpressions": zone("a"), "matchFields": [field("n2")]},
                {"matchExpressions": zone("b"), "matchFields": [field("n2")]},
                {"matchExpressions": zone("a"), "matchFields": [field("n7")]},
                {"matchExpressions": zone("b"), "matchFields": [field("n7")]},
            ]))
        );
        assert_eq!(
            t.pointer("/template/spec/affinity/podAntiAffinity"),
            Some(&json!({"x": 1}))
        );
        // a template that is not a Job spec is left alone, not a panic
        let mut odd = json!("not a job");
        pin_to_nodes(&mut odd, &nodes(&["n1"]));
        assert_eq!(odd, json!("not a job"));
    }

    #[test]
    fn a_node_that_cannot_take_an_agent_says_why() {
        let template = json!({"template": {"spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "probe", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}}
        }}});
        let node = |labels: &[(&str, &str)], taints: &[(&str, &str, &str)], cordoned: bool| NodeFacts {
            name: "n".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            taints: taints
                .iter()
                .map(|(k, v, e)| (k.to_string(), v.to_string(), e.to_string()))
                .collect(),
            unschedulable: cordoned,
            addresses: Vec::new(),
        };
        let linux = [("kubernetes.io/os", "linux"), ("kubernetes.io/arch", "amd64")];
        assert_eq!(cannot_run(&template, &node(&linux, &[], false)), None);
        assert_eq!(
            cannot_run(&template, &node(&linux, &[("dedicated", "probe", "NoSchedule")], false)),
            None,
            "tolerated"
        );
        assert_eq!(
            cannot_run(&template, &node(&[("kubernetes.io/os", "windows")], &[], false)).as_deref(),
            Some("label kubernetes.io/os=linux missing")
        );
        assert_eq!(
            cannot_run(&template, &node(&linux, &[("gpu", "", "NoExecute")], false)).as_deref(),
            Some("taint gpu:NoExecute not tolerated")
        );
        assert_eq!(
            cannot_run(&template, &node(&linux, &[("x", "", "PreferNoSchedule")], false)),
            None
        );
        assert_eq!(
            cannot_run(&template, &node(&linux, &[], true)).as_deref(),
            Some("cordoned")
        );
        assert_eq!(
            cannot_run(
                &template,
                &node(
                    &[("kubernetes.io/os", "linux"), ("kubernetes.io/arch", "s390x")],
                    &[],
                    false
                )
            )
            .as_deref(),
            Some("required node affinity not met")
        );
        // kpatrol's default toleration (operator Exists) takes every taint, cordons too
        let all = json!({"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}});
        assert_eq!(cannot_run(&all, &node(&linux, &[("gpu", "", "NoExecute")], true)), None);
    }

    #[test]
    fn what_an_overlay_set_on_the_launcher_reaches_the_agents() {
        let launcher: Pod = serde_json::from_value(json!({"metadata": {"labels": {"team": "a", "batch.kubernetes.io/job-name": "l"}},
            "spec": {"imagePullSecrets": [{"name": "regcred"}], "priorityClassName": "high",
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                "containers": [{"name": "l", "image": "registry.example/kpatrol:2",
                    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}, {"name": "KPATROL_NAMESPACE", "value": "launcher's"}],
                    "resources": {"limits": {"memory": "64Mi"}}}]}}))
        .unwrap();
        let mut t = json!({"template": {"metadata": {"labels": {"kpatrol.dev/task": "t"}}, "spec": {
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"args": ["dns"], "env": [{"name": "KPATROL_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}]}}});
        inherit(&mut t, &launcher);
        let pod = &t["template"]["spec"];
        assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(pod["priorityClassName"], "high");
        assert_eq!(
            pod["tolerations"],
            json!([{"operator": "Exists"}, {"key": "dedicated", "operator": "Exists"}])
        );
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "registry.example/kpatrol:2");
        assert_eq!(
            c["env"],
            json!([{"name": "KPATROL_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]),
            "the template's own entries stay; the launcher's others are added"
        );
        assert_eq!(c.get("resources"), None, "a launcher's resources are not an agent's");
        assert_eq!(
            t["template"]["metadata"]["labels"],
            json!({"kpatrol.dev/task": "t", "team": "a"})
        );
    }

    #[test]
    fn the_one_agent_per_node_rule_is_scoped_to_the_round() {
        let mut t = json!({"template": {"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"kpatrol.dev/task": "dns", "app.kubernetes.io/component": "probe"}}, "topologyKey": "kubernetes.io/hostname"},
            {"labelSelector": {"matchLabels": {"app": "theirs"}}, "topologyKey": "zone"}]}}}}});
        scope_to_round(&mut t, "dns-123-a");
        let terms =
            &t["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            terms[0]["labelSelector"],
            json!({"matchLabels": {"batch.kubernetes.io/job-name": "dns-123-a"}})
        );
        assert_eq!(
            terms[1]["labelSelector"],
            json!({"matchLabels": {"app": "theirs"}}),
            "the task's own rule stays"
        );
    }

    #[test]
    fn the_agents_job_has_one_completion_per_node_and_forwarded_args() {
        let template = json!({"completionMode": "Indexed", "completions": 1, "parallelism": 1,
            "template": {"metadata": {"labels": {"kpatrol.dev/task": "t"}}, "spec": {"containers": [{"args": ["dns", "--task", "/t"]}]}}});
        let j = agents_job(
            &template,
            "t-1-agents",
            "kpatrol",
            5,
            &["--qps".into(), "50".into()],
            &[("TRACEPARENT".into(), "00-x-y-01".into())],
            None,
        )
        .unwrap();
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "TRACEPARENT", "value": "00-x-y-01"}])
        );
        assert_eq!(j["spec"]["completions"], 5);
        assert_eq!(j["spec"]["parallelism"], 5);
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["dns", "--task", "/t", "--qps", "50"])
        );
        assert_eq!(j["metadata"]["labels"]["kpatrol.dev/task"], "t");
        let _: Job = serde_json::from_value(j).unwrap();
    }

    #[test]
    fn a_template_without_a_container_is_an_error_not_a_panic() {
        let owner: Job = serde_json::from_value(json!({"metadata": {"name": "l", "uid": "u"}})).unwrap();
        let launcher: Pod = serde_json::from_value(json!({"metadata": {"labels": {"team": "a"}},
            "spec": {"containers": [{"name": "l", "image": "img"}]}}))
        .unwrap();
        for bad in [
            json!({}),
            json!([]),
            json!("job"),
            json!({"template": {"metadata": "x", "spec": {"containers": []}}}),
            json!({"template": {"spec": {"containers": [7]}}}),
        ] {
            let mut t = bad.clone();
            inherit(&mut t, &launcher);
            let env = [("TRACEPARENT".to_string(), "x".to_string())];
            let e = agents_job(&t, "a", "ns", 2, &["--qps".into()], &env, Some(&owner)).unwrap_err();
            assert!(e.to_string().starts_with("agents' Job template: "), "{bad}: {e}");
        }
        // a container with no labels anywhere: the launcher's labels create them
        let mut t = json!({"template": {"spec": {"containers": [{"args": ["dns"], "env": "x"}]}}});
        inherit(&mut t, &launcher);
        let j = agents_job(&t, "a", "ns", 2, &[], &[("K".into(), "V".into())], Some(&owner)).unwrap();
        assert_eq!(j["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "u");
        let c = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            (&c["image"], &c["env"]),
            (&json!("img"), &json!([{"name": "K", "value": "V"}]))
        );
    }

    #[test]
    fn a_round_is_counted_once_under_a_precondition_and_the_last_suspends() {
        let annotations = |done: &str, last: &str| {
            BTreeMap::from([
                (ROUNDS_DONE.to_string(), done.to_string()),
                (LAST_ROUND.to_string(), last.to_string()),
            ])
        };
        assert_eq!(
            round_patch(None, "7", "t-1", 3),
            Some(json!({"metadata": {"resourceVersion": "7", "annotations": {ROUNDS_DONE: "1", LAST_ROUND: "t-1"}}}))
        );
        assert_eq!(
            round_patch(Some(&annotations("2", "t-2")), "9", "t-3", 3),
            Some(
                json!({"metadata": {"resourceVersion": "9", "annotations": {ROUNDS_DONE: "3", LAST_ROUND: "t-3"}}, "spec": {"suspend": true}})
            )
        );
        assert_eq!(
            round_patch(Some(&annotations("2", "t-2")), "9", "t-2", 3),
            None,
            "a retried pod of the same round"
        );
    }
}
