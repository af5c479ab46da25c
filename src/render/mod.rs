//! Rendering: plans into plain Kubernetes manifests. Owns the objects a task becomes and
//! their text: typed k8s-openapi objects ([`Object`]), serialised through JSON with sorted
//! keys and sorted documents, no timestamps. Pure and deterministic: no files, no I/O
//! (`kpatrol render` writes the files, see `crate::cli::render_files`).
//!
//! Per task: a ConfigMap holding the task, and a Job (one round) or a CronJob (rounds on a
//! schedule) whose Job is Indexed with one pod per agent; for agents that follow the nodes,
//! a launcher (`kpatrol round`) with just the RBAC it needs. Pods meet Pod Security
//! "restricted". See `docs/render.md`.

pub(crate) mod pod;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Value, json};

use crate::diag::{Diagnostic, Diagnostics};
use crate::names::label;
use crate::plan::schedule::{Schedule, interval_cron};
use crate::plan::{Format, Plan};

/// The image rendered manifests run unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/kpatrol/kpatrol:", env!("CARGO_PKG_VERSION"));
/// Where a pod finds the task, mounted Secrets and ConfigMaps.
pub const MOUNT_ROOT: &str = "/etc/kpatrol";
/// Finished Jobs are kept this long (seconds) for `kpatrol status` and `report`.
pub const JOB_TTL_SECONDS: i32 = 86_400;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            image: DEFAULT_IMAGE.into(),
        }
    }
}

/// One object a task renders to, typed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    ConfigMap(ConfigMap),
    // boxed: a workload is ten times the size of the other objects
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Service(Box<Service>),
    Ingress(Box<k8s_openapi::api::networking::v1::Ingress>),
}

/// Rendered files (name → YAML text), ready for a directory.
#[derive(Debug, Default, PartialEq)]
pub struct Rendered {
    pub files: BTreeMap<String, String>,
    /// Every object of every task (what `kpatrol apply` sends) as JSON with sorted keys, in
    /// apply order.
    pub objects: Vec<Value>,
    pub warnings: Vec<Diagnostic>,
}

/// What to do about an agent that may not fit its pod.
pub const MEMORY_ALLOWED: &str =
    "a lower qps, timeout or maxInFlight, fewer targets per task, or agents.resources.limits.memory to match";

/// Renders every plan; either every task renders or nothing does.
pub fn render(plans: &[Plan], opts: &RenderOptions) -> Result<Rendered, Vec<Diagnostic>> {
    let mut out = Rendered::default();
    let mut errors = Vec::new();
    let mut names: BTreeMap<String, &Plan> = BTreeMap::new();
    for plan in plans {
        let mut d = Diagnostics::new(&plan.origin.file);
        let base = base_name(plan);
        let file = format!("{}-{base}.yaml", plan.namespace);
        if let Some(other) = names.insert(file.clone(), plan) {
            d.error(
                plan.origin.name_pos,
                "metadata.name",
                format!(
                    "renders to the same objects as {} in {}",
                    other.name,
                    other.origin.file.display()
                ),
            )
            .allowed("distinct names per namespace");
        }
        match objects(plan, opts, &mut d).and_then(|objs| json_all(&objs, plan, &mut d)) {
            Some(objs) if !d.has_errors() => {
                out.files.insert(file, to_yaml(&objs));
                out.objects.extend(objs);
            }
            _ => {}
        }
        for diag in d.list {
            match diag.severity {
                crate::diag::Severity::Error => errors.push(diag),
                crate::diag::Severity::Warning => out.warnings.push(diag),
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
        return Err(errors);
    }
    out.objects.sort_by_key(order_key);
    let resources: Vec<Value> = out.files.keys().map(|k| Value::String(k.clone())).collect();
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    out.files.insert("kustomization.yaml".into(), to_yaml(&[kustomization]));
    Ok(out)
}

/// The name a task's objects carry: the task's name, or `<kind>-<name>` for kdoctor tasks
/// (cluster-scoped there), shortened with a hash to 46 characters: a CronJob adds 11 to its
/// Jobs' names and an Indexed Job its pods' index, and pod hostnames stay within 63.
pub fn base_name(plan: &Plan) -> String {
    let raw = match plan.format {
        Format::Native => plan.name.clone(),
        Format::Kdoctor => format!("{}-{}", plan.kind.to_ascii_lowercase(), plan.name.replace('.', "-")),
    };
    short_name(&raw, crate::task::NAME_MAX)
}

/// The name of a mesh task's agents' Service (`mesh-<base>`: a Service's name must start
/// with a letter, and `<base>` may not).
pub fn mesh_service_name(plan: &Plan) -> String {
    format!("mesh-{}", base_name(plan))
}

/// The name of a mesh's headless Service, the agents' pods' subdomain: each agent answers
/// at `<its pod's hostname>.mesh-<base>-agents.<namespace>.svc` (an Indexed Job's pod's
/// hostname is `<job>-<index>`).
pub fn mesh_agents_name(plan: &Plan) -> String {
    format!("mesh-{}-agents", base_name(plan))
}

/// `name` when it fits in `max` characters, else its start and a hash of the whole.
pub fn short_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    format!(
        "{}-{:08x}",
        name[..max - 9].trim_end_matches(['-', '.']),
        fnv(name) as u32
    )
}

/// FNV-1a, for stable short hashes of names.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A volume name (a DNS-1123 label) for a Secret or ConfigMap name, which may hold dots.
pub fn volume_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let full = format!("{prefix}-{}", clean.trim_matches('-'));
    if full == format!("{prefix}-{name}") && full.len() <= 63 {
        return full;
    }
    format!(
        "{}-{:08x}",
        full[..full.len().min(50)].trim_end_matches('-'),
        fnv(name) as u32
    )
}

/// An object's metadata: its name, in the task's namespace, with the task's labels for
/// `component`.
pub(crate) fn meta(plan: &Plan, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels(plan, component)),
        ..Default::default()
    }
}

/// Labels every object of a task carries.
pub fn labels(plan: &Plan, component: &str) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = plan.labels.clone();
    let base = base_name(plan);
    for (k, v) in [
        // no app.kubernetes.io/instance: it is Argo CD's tracking label, and the Jobs and
        // pods a CronJob spawns would carry it, as if an Application of the task's name
        // owned them
        ("app.kubernetes.io/name", "kpatrol"),
        (label::COMPONENT, component),
        (label::MANAGED_BY, label::MANAGER),
        ("app.kubernetes.io/part-of", "kpatrol"),
        (label::TASK, base.as_str()),
        (label::KIND, plan.kind.as_str()),
    ] {
        l.insert(k.into(), v.into());
    }
    l
}

/// Secrets and ConfigMaps a task's pods mount, by name.
pub(crate) struct Mounted {
    pub secrets: Vec<String>,
    pub config_maps: Vec<String>,
    /// Volumes mounted read-write at a path, in task order (DiskCheck's folders).
    pub volumes: Vec<(String, crate::modes::disk::DiskVolume)>,
}

fn mounted(plan: &Plan, d: &mut Diagnostics) -> Mounted {
    if let Some(ns) = plan
        .origin
        .document
        .pointer("/spec/target/tlsSecretNamespace")
        .and_then(Value::as_str)
        && ns != plan.namespace
    {
        d.warn(
            plan.origin.pos("spec.target.tlsSecretNamespace"),
            "spec.target.tlsSecretNamespace",
            format!(
                "pods mount Secrets of their own namespace: the TLS Secret is read from namespace {}, not {ns}",
                plan.namespace
            ),
        );
    }
    let mut needs = crate::modes::Needs::new(plan, d);
    plan.mode.mounts(&mut needs);
    let crate::modes::Needs {
        mut secrets,
        mut config_maps,
        volumes,
        ..
    } = needs;
    secrets.sort();
    secrets.dedup();
    config_maps.sort();
    config_maps.dedup();
    Mounted {
        secrets,
        config_maps,
        volumes,
    }
}

/// The cron expression of a periodic task.
fn cron(plan: &Plan, d: &mut Diagnostics) -> Option<String> {
    let field = match plan.format {
        Format::Native => "spec.schedule",
        Format::Kdoctor => "spec.schedule.schedule",
    };
    let every = match &plan.schedule {
        Schedule::Cron(c) => return Some(c.clone()),
        Schedule::Once => return Some("@once".into()),
        Schedule::Every(e) => *e,
        Schedule::Minutes { every_min, .. } => std::time::Duration::from_secs(every_min * 60),
    };
    match interval_cron(every) {
        Some(c) => Some(c),
        None => {
            d.error(plan.origin.pos(field), field, format!("`{}` has no CronJob equivalent", plan.schedule))
                .allowed("intervals a CronJob can repeat evenly: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 minutes; 1, 2, 3, 4, 6, 8, 12 hours; 24 hours");
            None
        }
    }
}

/// Every object of one task.
pub fn objects(plan: &Plan, opts: &RenderOptions, d: &mut Diagnostics) -> Option<Vec<Object>> {
    if !plan.mode.renders() {
        d.error(
            plan.origin.name_pos,
            "kind",
            format!(
                "{} runs in the `{}` mode, which this version cannot render yet",
                plan.kind,
                plan.mode.name()
            ),
        )
        .allowed(crate::task::renderable_kinds().join(", "));
        return None;
    }
    if let Some(problem) = pod::memory_problem(plan) {
        d.warn(plan.origin.pos("spec.pressure"), "spec.pressure", problem)
            .allowed(MEMORY_ALLOWED);
    }
    let base = base_name(plan);
    let mounted = mounted(plan, d);
    let pass = pod::passthrough(plan, d);
    let schedule = cron(plan, d)?;
    let pass = pass?;
    let mut objs = Vec::new();
    let task_yaml = serde_yaml_ng::to_string(&plan.origin.document).unwrap_or_default();
    let per_node = pod::per_node_selector(plan).is_some();
    let periodic = plan.is_periodic();
    let counted_rounds = periodic && plan.rounds > 1;
    // agents need the API only to count rounds, and not when a launcher does it for them
    let agent_job = pod::agent_job_spec(plan, opts, &mounted, &pass, counted_rounds && !per_node);
    let mut cm_data = BTreeMap::from([("task.yaml".to_string(), task_yaml.clone())]);
    if per_node {
        // the launcher creates each round's agents from this Job template
        let template = json_of(&agent_job, plan, d)?;
        cm_data.insert("agents-job.yaml".into(), yaml(&template));
    }
    objs.push(Object::ConfigMap(ConfigMap {
        metadata: meta(plan, format!("{base}-task"), "task"),
        data: Some(cm_data),
        ..Default::default()
    }));
    let (job_spec, component) = if per_node {
        (pod::launcher_job_spec(plan, opts, &pass), "launcher")
    } else {
        (agent_job, "probe")
    };
    // A Job's pod template is immutable: a one-round Job is named by a hash of what it runs
    // (its spec and its task), so a changed task or image is a new Job that apply, Argo CD
    // and Flux create, rather than an update the API server refuses (prune removes the old).
    let job_name = if periodic {
        base.clone()
    } else {
        let spec = json_of(&job_spec, plan, d)?;
        format!("{base}-{:08x}", fnv(&format!("{spec}\n{task_yaml}")) as u32)
    };
    let mut job_meta = meta(plan, job_name, component);
    if counted_rounds {
        job_meta.annotations = Some(BTreeMap::from([(
            crate::names::annotation::ROUNDS.to_string(),
            plan.rounds.to_string(),
        )]));
    }
    if periodic {
        objs.push(Object::CronJob(Box::new(CronJob {
            metadata: job_meta,
            spec: Some(CronJobSpec {
                schedule,
                concurrency_policy: Some("Forbid".into()),
                starting_deadline_seconds: Some(300),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(plan, component)),
                        ..Default::default()
                    }),
                    spec: Some(job_spec),
                },
                time_zone: plan.time_zone.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })));
    } else {
        objs.push(Object::Job(Box::new(Job {
            metadata: job_meta,
            spec: Some(job_spec),
            ..Default::default()
        })));
    }
    if per_node || counted_rounds {
        objs.extend(pod::rbac(plan, per_node, counted_rounds));
    }
    if let crate::modes::Mode::Reach(reach) = &plan.mode {
        objs.push(Object::Service(Box::new(pod::mesh_headless(plan))));
        if let Some(svc) = pod::mesh_service(plan, reach) {
            objs.push(Object::Service(Box::new(svc)));
        }
        if let Some(ing) = pod::mesh_ingress(plan, reach) {
            objs.push(Object::Ingress(Box::new(ing)));
        }
    }
    if plan.agents.host_network {
        d.warn(
            plan.origin.name_pos,
            "spec.agentSpec.hostNetwork",
            "hostNetwork pods do not meet Pod Security \"restricted\"; the namespace must allow \"privileged\"",
        );
    }
    Some(objs)
}

/// A typed object as JSON with its keys sorted at every level: the order the manifests and
/// their snapshots have always had, whichever order a type declares its fields in.
pub fn to_json<T: Serialize>(object: &T) -> Result<Value, serde_json::Error> {
    serde_json::to_value(object).map(sorted)
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// [`to_json`], a failure (which typed objects cannot produce: their keys are strings) an
/// error of the task rather than a panic.
fn json_of<T: Serialize>(object: &T, plan: &Plan, d: &mut Diagnostics) -> Option<Value> {
    to_json(object)
        .map_err(|e| {
            d.error(
                plan.origin.name_pos,
                "",
                format!("cannot serialise a rendered object: {e}"),
            );
        })
        .ok()
}

fn json_all(objs: &[Object], plan: &Plan, d: &mut Diagnostics) -> Option<Vec<Value>> {
    objs.iter().map(|o| json_of(o, plan, d)).collect()
}

fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ServiceAccount" => 1,
        "ClusterRole" => 2,
        "ClusterRoleBinding" => 3,
        "Role" => 4,
        "RoleBinding" => 5,
        "ConfigMap" => 6,
        "Service" => 7,
        "Ingress" => 8,
        _ => 9,
    }
}

/// Objects in the order they can be applied: namespaces and RBAC first, workloads last.
pub fn order_key(o: &Value) -> (u8, String, String, String) {
    (
        kind_rank(text(o, "/kind")),
        text(o, "/kind").to_string(),
        text(o, "/metadata/namespace").to_string(),
        text(o, "/metadata/name").to_string(),
    )
}

/// Objects as one multi-document YAML text, in a fixed order.
pub fn to_yaml(objs: &[Value]) -> String {
    let mut sorted: Vec<&Value> = objs.iter().collect();
    sorted.sort_by_key(|o| {
        (
            kind_rank(text(o, "/kind")),
            text(o, "/kind").to_string(),
            text(o, "/metadata/name").to_string(),
        )
    });
    let docs: Vec<String> = sorted.iter().map(|o| yaml(o)).collect();
    docs.join("---\n")
}

/// One JSON value as YAML. JSON has only string keys and finite numbers, so this cannot
/// fail; an object that did would show as an empty document rather than be lost silently.
#[allow(clippy::expect_used)]
fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).expect("a JSON value serialises as YAML")
}

/// The string at `pointer` (`/a/b`) of a JSON value, or "".
fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}
