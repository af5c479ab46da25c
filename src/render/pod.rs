//! Pod templates (agents and launcher), the RBAC a task's pods need, and the Kubernetes
//! objects a task passes through to its agents (resources, affinity, tolerations, env),
//! read into their typed fields. Pure: typed k8s-openapi values in, typed values out.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, HostPathVolumeSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{JOB_TTL_SECONDS, MOUNT_ROOT, Mounted, Object, RenderOptions, base_name, labels};
use crate::diag::Diagnostics;
use crate::names;
use crate::plan::{Format, Placement, Plan};

/// What a task passes through to its agents' pods as given, read into the Kubernetes types.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Passthrough {
    pub resources: Option<ResourceRequirements>,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Vec<Toleration>>,
    pub env: Vec<EnvVar>,
}

/// A passthrough value that is not what Kubernetes takes there.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    /// Dotted path of the offending field, such as `spec.agents.resources.limits`.
    pub field: String,
    pub message: String,
}

/// Where a task's passthrough objects sit in its file.
fn agents_field(plan: &Plan) -> &'static str {
    match plan.format {
        Format::Native => "spec.agents",
        Format::Kdoctor => "spec.agentSpec",
    }
}

/// Reads the task's passthrough objects. One that is not its Kubernetes type, holds a field
/// the type does not have (which reading would drop) or lacks one the type requires (which
/// reading would fill in empty) is an error naming the field.
pub(crate) fn passthrough(plan: &Plan, d: &mut Diagnostics) -> Option<Passthrough> {
    fn take<T>(r: Result<Option<T>, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
        r.map_err(|p| problems.push(p)).ok().flatten()
    }
    let mut problems = Vec::new();
    let pass = Passthrough {
        resources: take(
            passthrough_value(plan, "resources", "ResourceRequirements"),
            &mut problems,
        ),
        affinity: take(passthrough_value(plan, "affinity", "Affinity"), &mut problems),
        tolerations: take(
            passthrough_value(plan, "tolerations", "list of Tolerations"),
            &mut problems,
        ),
        env: take(passthrough_value(plan, "env", "list of EnvVars"), &mut problems).unwrap_or_default(),
    };
    for p in &problems {
        // where the task's field is when planning recorded it, else the task's name
        let top = p.field.split(['.', '[']).take(3).collect::<Vec<_>>().join(".");
        d.error(plan.origin.pos(&top), &p.field, p.message.clone());
    }
    problems.is_empty().then_some(pass)
}

/// The passthrough object `key` of `plan` as a `T` (`None` when absent or null).
fn passthrough_value<T: DeserializeOwned + Serialize>(
    plan: &Plan,
    key: &str,
    what: &str,
) -> Result<Option<T>, Problem> {
    match plan.agents.passthrough.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => typed(v, &format!("{}.{key}", agents_field(plan)), what).map(Some),
    }
}

/// `v` read as a `T`; a problem names the field at `field` (and below) that does not fit.
fn typed<T: DeserializeOwned + Serialize>(v: &Value, field: &str, what: &str) -> Result<T, Problem> {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => {
            // the k8s-openapi types skip fields they do not know and fill in required fields
            // that are missing: find either by reading back
            let back = serde_json::to_value(&t).unwrap_or(Value::Null);
            match mismatch(v, &back) {
                None => Ok(t),
                Some((at, Mismatch::Unknown)) => Err(Problem {
                    field: format!("{field}{at}"),
                    message: format!("not a field of a Kubernetes {what}"),
                }),
                Some((at, Mismatch::Missing(key))) => Err(Problem {
                    field: format!("{field}{at}"),
                    message: format!("missing field `{key}` (read as a Kubernetes {what})"),
                }),
            }
        }
        Err(e) => {
            let parses = |c: &Value| serde_json::from_value::<T>(c.clone()).is_ok();
            Err(Problem {
                field: format!("{field}{}", culprit(v, &parses)),
                message: format!("{e} (read as a Kubernetes {what})"),
            })
        }
    }
}

/// How a passthrough value and its reading back differ.
#[derive(Debug, PartialEq)]
enum Mismatch {
    /// The field at the path is not one of the type's: reading dropped it.
    Unknown,
    /// The object at the path lacks this required field: reading filled it in.
    Missing(String),
}

/// The first difference in fields between `input` and `output` (`input` read as a
/// Kubernetes type and written back), with its path suffix; null fields of `input` are absent.
fn mismatch(input: &Value, output: &Value) -> Option<(String, Mismatch)> {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            let given = i.iter().filter(|(_, v)| !v.is_null());
            for (k, v) in given {
                let found = match o.get(k) {
                    None => Some((String::new(), Mismatch::Unknown)),
                    Some(w) => mismatch(v, w),
                };
                if let Some((rest, m)) = found {
                    return Some((format!(".{k}{rest}"), m));
                }
            }
            let missing = o.keys().find(|k| i.get(*k).is_none_or(Value::is_null))?;
            Some((String::new(), Mismatch::Missing(missing.clone())))
        }
        (Value::Array(i), Value::Array(o)) => i
            .iter()
            .zip(o)
            .enumerate()
            .find_map(|(n, (v, w))| mismatch(v, w).map(|(rest, m)| (format!("[{n}]{rest}"), m))),
        _ => None,
    }
}

/// Where in `v`, which does not parse, the problem is: the deepest part whose removal makes
/// it parse, as a path suffix (`.limits`, `[0].value`); "" when no single part does.
fn culprit(v: &Value, parses: &dyn Fn(&Value) -> bool) -> String {
    // JSON pointer of the part looked at, and its path as a task shows it
    let (mut pointer, mut path) = (String::new(), String::new());
    loop {
        let children: Vec<(String, String)> = match v.pointer(&pointer) {
            Some(Value::Object(m)) => m
                .keys()
                .map(|k| (k.replace('~', "~0").replace('/', "~1"), format!(".{k}")))
                .collect(),
            Some(Value::Array(a)) => (0..a.len()).map(|n| (n.to_string(), format!("[{n}]"))).collect(),
            _ => Vec::new(),
        };
        let found = children.into_iter().find(|(step, _)| {
            let mut candidate = v.clone();
            remove(&mut candidate, &pointer, step);
            parses(&candidate)
        });
        match found {
            Some((step, shown)) => {
                pointer = format!("{pointer}/{step}");
                path.push_str(&shown);
            }
            None => return path,
        }
    }
}

/// Removes the child `step` (an escaped key or an index) of the part of `v` at `pointer`.
fn remove(v: &mut Value, pointer: &str, step: &str) {
    match v.pointer_mut(pointer) {
        Some(Value::Object(m)) => {
            m.remove(&step.replace("~1", "/").replace("~0", "~"));
        }
        Some(Value::Array(a)) => {
            if let Some(n) = step.parse::<usize>().ok().filter(|n| *n < a.len()) {
                a.remove(n);
            }
        }
        _ => {}
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Seconds as the API takes them.
fn seconds(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Security settings that meet Pod Security "restricted".
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(strings(&["ALL"])),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        run_as_group: Some(65532),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// Environment every kpatrol pod gets: who it is (downward API) and kpatrol's resource
/// attributes following OpenTelemetry's Kubernetes conventions (KPATROL_RESOURCE_ATTRIBUTES,
/// merged by the probe with the standard OTEL_RESOURCE_ATTRIBUTES), then the task's own
/// `env`. The OTEL_* settings (endpoint, protocol, headers, a cluster's own attributes) come
/// from the optional ConfigMap `kpatrol-otel` of the namespace, which overlays set per cluster.
fn env(plan: &Plan, pass: &Passthrough, periodic: bool, count_rounds: bool) -> Vec<EnvVar> {
    let base = base_name(plan);
    let mut attrs = vec![
        format!("k8s.namespace.name=$({})", names::env::NAMESPACE),
        format!("k8s.pod.name=$({})", names::env::POD_NAME),
        format!("k8s.node.name=$({})", names::env::NODE_NAME),
        format!("k8s.job.name=$({})", names::env::JOB_NAME),
    ];
    if periodic {
        attrs.push(format!("k8s.cronjob.name={base}"));
    }
    attrs.push(format!("kpatrol.task={}", plan.name));
    attrs.push(format!("kpatrol.kind={}", plan.kind));
    for (k, v) in &plan.labels {
        attrs.push(format!("kpatrol.label.{k}={v}"));
    }
    let mut env = vec![
        field_env(names::env::POD_NAME, "metadata.name"),
        field_env(names::env::NAMESPACE, "metadata.namespace"),
        field_env(names::env::NODE_NAME, "spec.nodeName"),
        field_env(
            names::env::JOB_NAME,
            &format!("metadata.labels['{}']", names::label::JOB_NAME),
        ),
        field_env(
            names::env::AGENT_INDEX,
            &format!("metadata.annotations['{}']", names::annotation::COMPLETION_INDEX),
        ),
        value_env("OTEL_SERVICE_NAME", "kpatrol-probe"),
        value_env(names::env::RESOURCE_ATTRIBUTES, attrs.join(",")),
    ];
    if count_rounds {
        // the last of `rounds: N` suspends the CronJob
        env.push(value_env(names::env::ROUNDS, plan.rounds.to_string()));
        env.push(value_env(names::env::CRONJOB, base));
    }
    env.extend(pass.env.iter().cloned());
    env
}

/// The launcher's environment: as the agents', under its own service name.
fn launcher_env(plan: &Plan, pass: &Passthrough) -> Vec<EnvVar> {
    let mut e = env(plan, pass, plan.is_periodic(), plan.rounds > 1);
    for v in &mut e {
        if v.name == "OTEL_SERVICE_NAME" {
            v.value = Some("kpatrol-launcher".into());
        }
    }
    e
}

/// OTEL_* settings: the ConfigMap `kpatrol-otel`, and the Secret `kpatrol-otel` for what
/// must not sit in a ConfigMap (OTEL_EXPORTER_OTLP_HEADERS with a token); both optional.
fn otel_env_from() -> Vec<EnvFromSource> {
    vec![
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "kpatrol-otel".into(),
                optional: Some(true),
            }),
            ..Default::default()
        },
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "kpatrol-otel".into(),
                optional: Some(true),
            }),
            ..Default::default()
        },
    ]
}

/// Why an agent of `plan` may not fit its pod's memory limit: the engine's estimate for its
/// targets at its rate, timeout and in-flight bound against the limit the pod gets (the
/// default 128Mi, or `agents.resources.limits.memory`). `None` when it fits, or the limit is
/// not a quantity kpatrol reads, or the resources are not Kubernetes resources (rendering
/// says so). Pure; `validate` and `render` both warn with it.
pub fn memory_problem(plan: &Plan) -> Option<String> {
    let resources = passthrough_value(plan, "resources", "ResourceRequirements")
        .ok()?
        .unwrap_or_else(default_resources);
    let limit_text = resources.limits?.get("memory")?.0.clone();
    let limit = crate::task::k8s::quantity_bytes(&limit_text)?;
    let p = &plan.pressure;
    let targets = plan.targets().len();
    let need = crate::pressure::memory_estimate(p.rate, p.timeout, p.max_in_flight, targets);
    (need > limit).then(|| {
        format!(
            "an agent may need about {} MiB for {targets} target(s) at this rate, timeout and maxInFlight, above its pod's memory limit of {limit_text}",
            need.div_ceil(1 << 20)
        )
    })
}

fn quantities(items: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn requirements(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(requests)),
        limits: Some(quantities(limits)),
        ..Default::default()
    }
}

/// An agent's resources unless the task gives its own.
fn default_resources() -> ResourceRequirements {
    requirements(
        &[("cpu", "100m"), ("memory", "32Mi")],
        &[("cpu", "1"), ("memory", "128Mi")],
    )
}

fn task_volume(plan: &Plan) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "task".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-task", base_name(plan)),
                ..Default::default()
            }),
            ..Default::default()
        },
        read_only_mount("task", format!("{MOUNT_ROOT}/task")),
    )
}

fn read_only_mount(name: &str, path: String) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path,
        read_only: Some(true),
        ..Default::default()
    }
}

/// Labels (and annotations) of a pod template or a CronJob's Job template.
fn template_meta(labels: BTreeMap<String, String>, annotations: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..Default::default()
    }
}

/// The node selector of a task whose agents follow the nodes, one per matching node: a
/// per-node task's, and every mesh's (its agents are its nodes). `None` for a fixed count.
pub(crate) fn per_node_selector(plan: &Plan) -> Option<BTreeMap<String, String>> {
    match (&plan.agents.placement, &plan.mode) {
        (Placement::PerNode { node_selector }, _) => Some(node_selector.clone()),
        (Placement::Count(_), crate::modes::Mode::Reach(_)) => Some(BTreeMap::new()),
        (Placement::Count(_), _) => None,
    }
}

/// The mesh agents' Service, for the paths that go through one (ClusterIP, NodePort,
/// LoadBalancer, Ingress): of the type the widest path asks, over the families the task
/// enables, selecting every round's agents of the task. `None` when only pod addresses and
/// Multus interfaces are pressed.
pub(crate) fn mesh_service(plan: &Plan, reach: &crate::modes::reach::ReachPlan) -> Option<Service> {
    if !(reach.cluster_ip || reach.node_port || reach.load_balancer || reach.ingress) {
        return None;
    }
    let type_ = if reach.load_balancer {
        "LoadBalancer"
    } else if reach.node_port {
        "NodePort"
    } else {
        "ClusterIP"
    };
    let families: Vec<String> = [(reach.ipv4, "IPv4"), (reach.ipv6, "IPv6")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| f.to_string())
        .collect();
    let base = base_name(plan);
    Some(Service {
        metadata: super::meta(plan, super::mesh_service_name(plan), "mesh"),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(BTreeMap::from([
                (names::label::TASK.to_string(), base),
                (names::label::COMPONENT.to_string(), "probe".to_string()),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("mesh".into()),
                port: 80,
                target_port: Some(IntOrString::String("mesh".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            // both families: each the cluster has (naming IPv6 on a single-stack cluster is
            // refused); one: that one
            ip_family_policy: Some(
                if families.len() > 1 {
                    "PreferDualStack"
                } else {
                    "SingleStack"
                }
                .into(),
            ),
            ip_families: (families.len() == 1).then_some(families),
            // kubenurse's and kdoctor's rule for a node's own NodePort: its own agent answers
            external_traffic_policy: (type_ != "ClusterIP").then(|| "Local".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The mesh agents' headless Service: a stable name for each agent (the pods' subdomain).
pub(crate) fn mesh_headless(plan: &Plan) -> Service {
    Service {
        metadata: super::meta(plan, super::mesh_agents_name(plan), "mesh"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(BTreeMap::from([
                (names::label::TASK.to_string(), base_name(plan)),
                (names::label::COMPONENT.to_string(), "probe".to_string()),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("mesh".into()),
                port: i32::from(crate::modes::reach::agent::AGENT_PORT),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            // an agent is named as soon as it has an address
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The path an Ingress of a mesh routes to its agents when the task names none (kdoctor's
/// NetReach, whose Ingress comes from its chart).
pub const MESH_INGRESS_PATH: &str = "/kpatrol";

/// The mesh agents' Ingress, for the `ingress` path: the task's class, host and path (the
/// cluster's default class, any host and [`MESH_INGRESS_PATH`] for a NetReach) to the
/// agents' Service.
pub(crate) fn mesh_ingress(
    plan: &Plan,
    reach: &crate::modes::reach::ReachPlan,
) -> Option<k8s_openapi::api::networking::v1::Ingress> {
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
        IngressSpec, ServiceBackendPort,
    };
    if !reach.ingress {
        return None;
    }
    let route = reach.ingress_route.as_ref();
    Some(Ingress {
        metadata: super::meta(plan, super::mesh_service_name(plan), "mesh"),
        spec: Some(IngressSpec {
            ingress_class_name: route.map(|r| r.class_name.clone()),
            rules: Some(vec![IngressRule {
                host: route.map(|r| r.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(route.map_or(MESH_INGRESS_PATH.to_string(), |r| r.path.clone())),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: super::mesh_service_name(plan),
                                port: Some(ServiceBackendPort {
                                    name: Some("mesh".into()),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Job spec of one round's agents: Indexed, one pod per agent.
pub(crate) fn agent_job_spec(
    plan: &Plan,
    opts: &RenderOptions,
    mounted: &Mounted,
    pass: &Passthrough,
    api_access: bool,
) -> JobSpec {
    let base = base_name(plan);
    let per_node = per_node_selector(plan);
    let count = match (&plan.agents.placement, &per_node) {
        // the launcher sets completions and parallelism to the number of nodes
        (_, Some(_)) => 1,
        (Placement::Count(n), None) => i32::try_from(*n).unwrap_or(i32::MAX),
        (Placement::PerNode { .. }, None) => 1,
    };
    let mesh = matches!(plan.mode, crate::modes::Mode::Reach(_));
    let periodic = plan.is_periodic();
    let (task_vol, task_mount) = task_volume(plan);
    let mut volumes = vec![task_vol];
    let mut mounts = vec![task_mount];
    for s in &mounted.secrets {
        let v = super::volume_name("secret", s);
        volumes.push(Volume {
            name: v.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(read_only_mount(&v, format!("{MOUNT_ROOT}/secrets/{s}")));
    }
    for c in &mounted.config_maps {
        let v = super::volume_name("configmap", c);
        volumes.push(Volume {
            name: v.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: c.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(read_only_mount(&v, format!("{MOUNT_ROOT}/configmaps/{c}")));
    }
    for (i, (path, v)) in mounted.volumes.iter().enumerate() {
        use crate::modes::disk::DiskVolume;
        let name = format!("disk-{i}");
        let mut volume = Volume {
            name: name.clone(),
            ..Default::default()
        };
        match v {
            DiskVolume::EmptyDir => volume.empty_dir = Some(Default::default()),
            DiskVolume::HostPath(h) => {
                volume.host_path = Some(HostPathVolumeSource {
                    path: h.clone(),
                    type_: Some("Directory".into()),
                })
            }
            DiskVolume::Pvc(c) => {
                volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: c.clone(),
                    read_only: Some(false),
                })
            }
        }
        volumes.push(volume);
        mounts.push(VolumeMount {
            name,
            mount_path: path.clone(),
            ..Default::default()
        });
    }
    let container = Container {
        name: "probe".into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(strings(&["kpatrol-probe"])),
        args: Some(vec![
            plan.mode.name().to_string(),
            "--task".into(),
            format!("{MOUNT_ROOT}/task/task.yaml"),
            "--mounts".into(),
            MOUNT_ROOT.into(),
        ]),
        env: Some({
            let mut e = env(plan, pass, periodic, api_access);
            if mesh {
                // the agent serves on each of its pod's addresses
                // the pod's own addresses, for runtimes whose pods share a network
                e.push(field_env(crate::modes::reach::agent::POD_IPS_ENV, "status.podIPs"));
            }
            e
        }),
        ports: mesh.then(|| {
            vec![ContainerPort {
                name: Some("mesh".into()),
                container_port: i32::from(crate::modes::reach::agent::AGENT_PORT),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]
        }),
        env_from: Some(otel_env_from()),
        resources: Some(pass.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(container_security()),
        // a crash or an OOM kill still leaves its cause (the log's tail)
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut pod = PodSpec {
        restart_policy: Some("Never".into()),
        // SIGTERM to SIGKILL: the probe's drain, then 10 s for the report and telemetry
        termination_grace_period_seconds: Some(seconds(crate::pressure::DEFAULT_DRAIN.as_secs().saturating_add(10))),
        automount_service_account_token: Some(api_access),
        security_context: Some(PodSecurityContext {
            // a PVC's files are the pod's group's to write
            fs_group: mounted
                .volumes
                .iter()
                .any(|(_, v)| matches!(v, crate::modes::disk::DiskVolume::Pvc(_)))
                .then_some(65532),
            ..pod_security()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        service_account_name: api_access.then(|| base.clone()),
        ..Default::default()
    };
    if mesh {
        // each agent's stable name, under the mesh's headless Service
        pod.subdomain = Some(super::mesh_agents_name(plan));
    }
    if plan.agents.host_network {
        pod.host_network = Some(true);
        pod.dns_policy = Some("ClusterFirstWithHostNet".into());
    }
    if let Some(node_selector) = &per_node {
        // the probe is a Linux binary
        let mut selector = node_selector.clone();
        selector
            .entry("kubernetes.io/os".into())
            .or_insert_with(|| "linux".into());
        pod.node_selector = Some(selector);
        // one agent per node
        pod.affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([
                            (names::label::TASK.to_string(), base.clone()),
                            (names::label::COMPONENT.to_string(), "probe".to_string()),
                        ])),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod.tolerations = Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
    }
    // the task's own affinity merges with the one-agent-per-node rule (a kdoctor agentSpec
    // affinity must not let two agents share a node); its tolerations replace kpatrol's
    if let Some(a) = &pass.affinity {
        let mut merged = a.clone();
        let ours = pod
            .affinity
            .take()
            .and_then(|ours| ours.pod_anti_affinity)
            .and_then(|anti| anti.required_during_scheduling_ignored_during_execution);
        if let Some(ours) = ours {
            merged
                .pod_anti_affinity
                .get_or_insert_with(Default::default)
                .required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .extend(ours);
        }
        pod.affinity = Some(merged);
    }
    if let Some(t) = &pass.tolerations {
        pod.tolerations = Some(t.clone());
    }
    JobSpec {
        completion_mode: Some("Indexed".into()),
        completions: Some(count),
        parallelism: Some(count),
        // no retries, and one agent's failure does not stop the others
        backoff_limit_per_index: Some(0),
        max_failed_indexes: Some(count),
        // the round's timeout, plus a minute for scheduling, image pull and the report
        active_deadline_seconds: Some(seconds(plan.round_timeout.as_secs().max(1).saturating_add(60))),
        template: PodTemplateSpec {
            metadata: Some(template_meta(labels(plan, "probe"), &plan.agents.annotations)),
            spec: Some(pod),
        },
        // a single round's Job stays (GitOps would recreate a deleted one)
        ttl_seconds_after_finished: periodic.then_some(JOB_TTL_SECONDS),
        ..Default::default()
    }
}

/// The Job spec of the launcher (`kpatrol round`), which starts one agent per node.
pub(crate) fn launcher_job_spec(plan: &Plan, opts: &RenderOptions, pass: &Passthrough) -> JobSpec {
    let base = base_name(plan);
    let (task_vol, task_mount) = task_volume(plan);
    let container = Container {
        name: "launcher".into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(strings(&["kpatrol"])),
        args: Some(vec![
            "round".into(),
            "--task".into(),
            format!("{MOUNT_ROOT}/task/task.yaml"),
            "--agents-job".into(),
            format!("{MOUNT_ROOT}/task/agents-job.yaml"),
        ]),
        env: Some(launcher_env(plan, pass)),
        env_from: Some(otel_env_from()),
        // a mesh's launcher holds the round's matrix (3 million cells at 1,000 nodes: 84 MB)
        resources: Some(match plan.mode {
            crate::modes::Mode::Reach(_) => requirements(
                &[("cpu", "100m"), ("memory", "64Mi")],
                &[("cpu", "1"), ("memory", "512Mi")],
            ),
            _ => requirements(
                &[("cpu", "50m"), ("memory", "32Mi")],
                &[("cpu", "500m"), ("memory", "64Mi")],
            ),
        }),
        security_context: Some(container_security()),
        // a crash or an OOM kill still leaves its cause (the log's tail)
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![task_mount]),
        ..Default::default()
    };
    JobSpec {
        backoff_limit: Some(0),
        active_deadline_seconds: Some(seconds(plan.round_timeout.as_secs().max(1).saturating_add(120))),
        template: PodTemplateSpec {
            metadata: Some(template_meta(labels(plan, "launcher"), &BTreeMap::new())),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                service_account_name: Some(base),
                automount_service_account_token: Some(true),
                security_context: Some(pod_security()),
                containers: vec![container],
                volumes: Some(vec![task_vol]),
                ..Default::default()
            }),
        },
        ttl_seconds_after_finished: plan.is_periodic().then_some(JOB_TTL_SECONDS),
        ..Default::default()
    }
}

fn rule(api_group: &str, resource: &str, names: Option<&str>, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(&[api_group])),
        resources: Some(strings(&[resource])),
        resource_names: names.map(|n| strings(&[n])),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// ServiceAccount, Roles and bindings: the launcher lists nodes and runs the agents' Job;
/// a task with a round count reads its CronJob's Jobs and suspends the CronJob when done.
pub(crate) fn rbac(plan: &Plan, per_node: bool, counted_rounds: bool) -> Vec<Object> {
    let base = base_name(plan);
    let ns = plan.namespace.clone();
    let meta = || super::meta(plan, base.clone(), "rbac");
    let mut rules = Vec::new();
    if per_node {
        // start the agents' Job and follow it; read its own pod (image, labels) and the agents'
        rules.push(rule("batch", "jobs", None, &["create", "get", "watch"]));
        // a mesh's launcher also waits for its agents to run, on a watch
        let mesh = matches!(plan.mode, crate::modes::Mode::Reach(_));
        let verbs: &[&str] = if mesh {
            &["get", "list", "watch"]
        } else {
            &["get", "list"]
        };
        rules.push(rule("", "pods", None, verbs));
    }
    if let crate::modes::Mode::Reach(reach) = &plan.mode {
        // keeps each round's matrix in a ConfigMap of its own, for `kpatrol report --html`,
        // and hands the round's token to its agents in a Secret of its own
        rules.push(rule("", "configmaps", None, &["create"]));
        rules.push(rule("", "secrets", None, &["create"]));
        // and reads where the agents' Service answers
        if mesh_service(plan, reach).is_some() {
            rules.push(rule("", "services", Some(&super::mesh_service_name(plan)), &["get"]));
        }
        if mesh_ingress(plan, reach).is_some() {
            rules.push(rule(
                "networking.k8s.io",
                "ingresses",
                Some(&super::mesh_service_name(plan)),
                &["get"],
            ));
        }
    }
    if counted_rounds {
        // the count of rounds done lives on the CronJob (an annotation)
        rules.push(rule("batch", "cronjobs", Some(&base), &["get", "patch"]));
    }
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: base.clone(),
        namespace: Some(ns.clone()),
        ..Default::default()
    }]);
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    };
    let mut out = vec![
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(),
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
        Object::Role(Role {
            metadata: meta(),
            rules: Some(rules),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: meta(),
            role_ref: role_ref("Role", &base),
            subjects: subjects.clone(),
        }),
    ];
    if per_node {
        let cluster_name = format!("kpatrol-{ns}-{base}");
        let mut cluster_labels = labels(plan, "rbac");
        // cluster-wide objects name their task's namespace, so prune spares other namespaces'
        cluster_labels.insert(names::label::NAMESPACE.into(), ns.clone());
        let cmeta = ObjectMeta {
            name: Some(cluster_name.clone()),
            labels: Some(cluster_labels),
            ..Default::default()
        };
        out.push(Object::ClusterRole(ClusterRole {
            metadata: cmeta.clone(),
            rules: Some(vec![rule("", "nodes", None, &["list"])]),
            ..Default::default()
        }));
        out.push(Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: cmeta,
            role_ref: role_ref("ClusterRole", &cluster_name),
            subjects,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Passthrough, passthrough};
    use crate::diag::Diagnostics;
    use crate::plan::Plan;
    use crate::task::k8s::quantity_bytes;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes("128Mi"), Some(128 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1e9"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("512"), Some(512));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("-1Mi"), None);
    }

    fn plan(agents: &str) -> Plan {
        let text = format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web}}\nspec:\n  agents: {agents}\n  targets: [{{url: \"http://a/\"}}]\n"
        );
        let mut ft = crate::plan::load_str(Path::new("bad.yaml"), &text).unwrap();
        assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
        ft.plans.remove(0)
    }

    /// The problems `agents` gives, as printed.
    fn problems(agents: &str) -> Vec<String> {
        let p = plan(agents);
        let mut d = Diagnostics::new(&p.origin.file);
        let read = passthrough(&p, &mut d);
        assert_eq!(read.is_none(), d.has_errors());
        d.list.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_passthrough_that_is_not_its_kubernetes_type_is_an_error_naming_the_field() {
        assert_eq!(
            problems("{resources: {limits: 5}}"),
            [
                "bad.yaml:3:18: spec.agents.resources.limits: invalid type: integer `5`, expected a map (read as a Kubernetes ResourceRequirements)"
            ]
        );
        assert_eq!(
            problems("{env: [{name: A, value: x}, {name: B, valueFrom: {fieldRef: {fieldPath: [1]}}}]}"),
            [
                "bad.yaml:3:18: spec.agents.env[1].valueFrom.fieldRef.fieldPath: invalid type: sequence, expected a string (read as a Kubernetes list of EnvVars)"
            ]
        );
        assert_eq!(
            problems("{env: [{value: x}]}"),
            ["bad.yaml:3:18: spec.agents.env[0]: missing field `name` (read as a Kubernetes list of EnvVars)"]
        );
        // a field the type lacks would be dropped silently: an error instead
        assert_eq!(
            problems("{tolerations: [{operator: Exists, efect: NoSchedule}]}"),
            ["bad.yaml:3:18: spec.agents.tolerations[0].efect: not a field of a Kubernetes list of Tolerations"]
        );
        // and rendering the task fails with it rather than panicking
        let p = plan("{affinity: {nodeAffinity: 3}}");
        let errors = super::super::render(&[p], &Default::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.agents.affinity.nodeAffinity");
    }

    #[test]
    fn a_passthrough_reads_into_its_kubernetes_types() {
        let p = plan(
            "{resources: {limits: {cpu: 2, memory: 1Gi}}, env: [{name: A, value: x}], tolerations: [], affinity: null}",
        );
        let mut d = Diagnostics::new(&p.origin.file);
        let read: Passthrough = passthrough(&p, &mut d).unwrap();
        assert!(d.list.is_empty());
        let limits = read.resources.unwrap().limits.unwrap();
        assert_eq!(limits["cpu"].0, "2");
        assert_eq!(limits["memory"].0, "1Gi");
        assert_eq!(read.env[0].name, "A");
        assert_eq!(read.tolerations, Some(vec![]));
        assert_eq!(read.affinity, None);
    }
}
