//! Pod templates (agents and launcher) and the RBAC a task's pods need.

use serde_json::{Value, json};

use super::set;

use super::{JOB_TTL_SECONDS, MOUNT_ROOT, Mounted, RenderOptions, base_name, labels};
use crate::plan::{Placement, Plan};

/// Security settings that meet Pod Security "restricted".
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// Environment every kpatrol pod gets: who it is (downward API) and kpatrol's resource
/// attributes following OpenTelemetry's Kubernetes conventions (KPATROL_RESOURCE_ATTRIBUTES,
/// merged by the probe with the standard OTEL_RESOURCE_ATTRIBUTES). The OTEL_* settings
/// (endpoint, protocol, headers, a cluster's own attributes) come from the optional ConfigMap
/// `kpatrol-otel` of the namespace, which overlays set per cluster.
fn env(plan: &Plan, periodic: bool, count_rounds: bool) -> Vec<Value> {
    let base = base_name(plan);
    let mut attrs = vec![
        "k8s.namespace.name=$(KPATROL_NAMESPACE)".to_string(),
        "k8s.pod.name=$(KPATROL_POD_NAME)".into(),
        "k8s.node.name=$(KPATROL_NODE_NAME)".into(),
        "k8s.job.name=$(KPATROL_JOB_NAME)".into(),
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
        field_env("KPATROL_POD_NAME", "metadata.name"),
        field_env("KPATROL_NAMESPACE", "metadata.namespace"),
        field_env("KPATROL_NODE_NAME", "spec.nodeName"),
        field_env("KPATROL_JOB_NAME", "metadata.labels['batch.kubernetes.io/job-name']"),
        field_env(
            "KPATROL_AGENT_INDEX",
            "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        ),
        json!({"name": "OTEL_SERVICE_NAME", "value": "kpatrol-probe"}),
        json!({"name": "KPATROL_RESOURCE_ATTRIBUTES", "value": attrs.join(",")}),
    ];
    if count_rounds {
        // the last of `rounds: N` suspends the CronJob
        env.push(json!({"name": "KPATROL_ROUNDS", "value": plan.rounds.to_string()}));
        env.push(json!({"name": "KPATROL_CRONJOB", "value": base}));
    }
    if let Some(Value::Array(extra)) = plan.agents.passthrough.get("env") {
        env.extend(extra.iter().cloned());
    }
    env
}

/// The launcher's environment: as the agents', under its own service name.
fn launcher_env(plan: &Plan) -> Vec<Value> {
    let mut e = env(plan, plan.is_periodic(), plan.rounds > 1);
    for v in &mut e {
        if v.get("name").and_then(Value::as_str) == Some("OTEL_SERVICE_NAME") {
            set(v, "value", json!("kpatrol-launcher"));
        }
    }
    e
}

/// OTEL_* settings: the ConfigMap `kpatrol-otel`, and the Secret `kpatrol-otel` for what
/// must not sit in a ConfigMap (OTEL_EXPORTER_OTLP_HEADERS with a token); both optional.
fn otel_env_from() -> Value {
    json!([
        {"configMapRef": {"name": "kpatrol-otel", "optional": true}},
        {"secretRef": {"name": "kpatrol-otel", "optional": true}},
    ])
}

/// Why an agent of `plan` may not fit its pod's memory limit: the engine's estimate for its
/// targets at its rate, timeout and in-flight bound against the limit the pod gets (the
/// default 128Mi, or `agents.resources.limits.memory`). `None` when it fits or the limit is
/// not a quantity kpatrol reads. Pure; `validate` and `render` both warn with it.
pub fn memory_problem(plan: &Plan) -> Option<String> {
    let limit_text = resources(plan).pointer("/limits/memory")?.as_str()?.to_string();
    let limit = quantity_bytes(&limit_text)?;
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

/// Bytes of a Kubernetes quantity such as `128Mi`, `1G` or `1e9`; `None` for what it cannot read.
fn quantity_bytes(q: &str) -> Option<u64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(s, f)| q.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((q, 1.0));
    let v = number.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)? * factor;
    (v < u64::MAX as f64).then_some(v as u64)
}

fn resources(plan: &Plan) -> Value {
    plan.agents.passthrough.get("resources").cloned().unwrap_or_else(
        || json!({"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}),
    )
}

fn task_volume(plan: &Plan) -> (Value, Value) {
    (
        json!({"name": "task", "configMap": {"name": format!("{}-task", base_name(plan))}}),
        json!({"name": "task", "mountPath": format!("{MOUNT_ROOT}/task"), "readOnly": true}),
    )
}

/// The Job spec of one round's agents: Indexed, one pod per agent.
pub fn agent_job_spec(plan: &Plan, opts: &RenderOptions, mounted: &Mounted, api_access: bool) -> Value {
    let base = base_name(plan);
    let count = match &plan.agents.placement {
        Placement::Count(n) => *n,
        // the launcher sets completions and parallelism to the number of nodes
        Placement::PerNode { .. } => 1,
    };
    let periodic = plan.is_periodic();
    let (task_vol, task_mount) = task_volume(plan);
    let mut volumes = vec![task_vol];
    let mut mounts = vec![task_mount];
    for s in &mounted.secrets {
        let v = super::volume_name("secret", s);
        volumes.push(json!({"name": v, "secret": {"secretName": s}}));
        mounts.push(json!({"name": v, "mountPath": format!("{MOUNT_ROOT}/secrets/{s}"), "readOnly": true}));
    }
    for c in &mounted.config_maps {
        let v = super::volume_name("configmap", c);
        volumes.push(json!({"name": v, "configMap": {"name": c}}));
        mounts.push(json!({"name": v, "mountPath": format!("{MOUNT_ROOT}/configmaps/{c}"), "readOnly": true}));
    }
    let container = json!({
        "name": "probe",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["kpatrol-probe"],
        "args": [plan.mode.name(), "--task", format!("{MOUNT_ROOT}/task/task.yaml"), "--mounts", MOUNT_ROOT],
        "env": env(plan, periodic, api_access),
        "envFrom": otel_env_from(),
        "resources": resources(plan),
        "securityContext": container_security(),
        "terminationMessagePolicy": "File",
        "volumeMounts": mounts,
    });
    let mut pod = json!({
        "restartPolicy": "Never",
        // SIGTERM to SIGKILL: the probe's drain, then 10 s for the report and telemetry
        "terminationGracePeriodSeconds": crate::pressure::DEFAULT_DRAIN.as_secs() + 10,
        "automountServiceAccountToken": api_access,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": volumes,
    });
    if api_access {
        set(&mut pod, "serviceAccountName", json!(base));
    }
    if plan.agents.host_network {
        set(&mut pod, "hostNetwork", json!(true));
        set(&mut pod, "dnsPolicy", json!("ClusterFirstWithHostNet"));
    }
    if let Placement::PerNode { node_selector } = &plan.agents.placement {
        // the probe is a Linux binary
        let mut selector = node_selector.clone();
        selector
            .entry("kubernetes.io/os".into())
            .or_insert_with(|| "linux".into());
        set(&mut pod, "nodeSelector", json!(selector));
        // one agent per node
        set(
            &mut pod,
            "affinity",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"kpatrol.dev/task": base, "app.kubernetes.io/component": "probe"}},
                "topologyKey": "kubernetes.io/hostname",
            }]}}),
        );
        set(&mut pod, "tolerations", json!([{"operator": "Exists"}]));
    }
    for key in ["affinity", "tolerations"] {
        if let Some(v) = plan.agents.passthrough.get(key) {
            set(&mut pod, key, v.clone());
        }
    }
    let mut template_meta = json!({"labels": labels(plan, "probe")});
    if !plan.agents.annotations.is_empty() {
        set(&mut template_meta, "annotations", json!(plan.agents.annotations));
    }
    let mut spec = json!({
        "completionMode": "Indexed",
        "completions": count,
        "parallelism": count,
        // no retries, and one agent's failure does not stop the others
        "backoffLimitPerIndex": 0,
        "maxFailedIndexes": count,
        // the round's timeout, plus a minute for scheduling, image pull and the report
        "activeDeadlineSeconds": plan.round_timeout.as_secs().max(1) + 60,
        "template": {"metadata": template_meta, "spec": pod},
    });
    if periodic {
        // a single round's Job stays (GitOps would recreate a deleted one)
        set(&mut spec, "ttlSecondsAfterFinished", json!(JOB_TTL_SECONDS));
    }
    spec
}

/// The Job spec of the launcher (`kpatrol round`), which starts one agent per node.
pub fn launcher_job_spec(plan: &Plan, opts: &RenderOptions) -> Value {
    let base = base_name(plan);
    let (task_vol, task_mount) = task_volume(plan);
    let periodic = plan.is_periodic();
    let mut spec = json!({
        "backoffLimit": 0,
        "activeDeadlineSeconds": plan.round_timeout.as_secs().max(1) + 120,
        "template": {
            "metadata": {"labels": labels(plan, "launcher")},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": base,
                "automountServiceAccountToken": true,
                "securityContext": pod_security(),
                "containers": [{
                    "name": "launcher",
                    "image": opts.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["kpatrol"],
                    "args": ["round", "--task", format!("{MOUNT_ROOT}/task/task.yaml"), "--agents-job", format!("{MOUNT_ROOT}/task/agents-job.yaml")],
                    "env": launcher_env(plan),
                    "envFrom": otel_env_from(),
                    "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
                    "securityContext": container_security(),
                    "terminationMessagePolicy": "File",
                    "volumeMounts": [task_mount],
                }],
                "volumes": [task_vol],
            },
        },
    });
    if periodic {
        set(&mut spec, "ttlSecondsAfterFinished", json!(JOB_TTL_SECONDS));
    }
    spec
}

/// ServiceAccount, Roles and bindings: the launcher lists nodes and runs the agents' Job;
/// a task with a round count reads its CronJob's Jobs and suspends the CronJob when done.
pub fn rbac(plan: &Plan, per_node: bool, counted_rounds: bool) -> Vec<Value> {
    let base = base_name(plan);
    let ns = plan.namespace.clone();
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": labels(plan, "rbac")});
    let mut rules = Vec::new();
    if per_node {
        // start the agents' Job and follow it; read its own pod (image, labels) and the agents'
        rules.push(json!({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}));
        rules.push(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}));
    }
    if counted_rounds {
        // the count of rounds done lives on the CronJob (an annotation)
        rules.push(json!({"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": [base], "verbs": ["get", "patch"]}));
    }
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&base), "automountServiceAccountToken": false}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(&base), "rules": rules}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(&base),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": base},
            "subjects": [{"kind": "ServiceAccount", "name": base, "namespace": ns}],
        }),
    ];
    if per_node {
        let cluster_name = format!("kpatrol-{ns}-{base}");
        let mut cluster_labels = labels(plan, "rbac");
        // cluster-wide objects name their task's namespace, so prune spares other namespaces'
        set(&mut cluster_labels, "kpatrol.dev/namespace", json!(ns));
        let cmeta = json!({"name": cluster_name, "labels": cluster_labels});
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": cmeta,
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        }));
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": cmeta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": base, "namespace": ns}],
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quantity_bytes;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes("128Mi"), Some(128 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1e9"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("512"), Some(512));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("-1Mi"), None);
    }
}
