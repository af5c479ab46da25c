//! Rendering: every manifest of every example task checked against the Kubernetes OpenAPI
//! schema in strict mode (kubernetes-validate) for the oldest and newest supported minor,
//! every pod against Pod Security "restricted", snapshots of the output, determinism, and
//! the all-or-nothing write.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kpatrol::plan::Plan;
use kpatrol::render::{RenderOptions, Rendered, render};
use serde_json::Value;

/// The oldest and newest Kubernetes minors kpatrol's manifests support.
pub const MINORS: [&str; 2] = ["1.33", "1.37"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plans(paths: &[PathBuf]) -> Vec<Plan> {
    let files = kpatrol::task::collect_files(paths).unwrap();
    let mut out = Vec::new();
    for f in files {
        let ft = kpatrol::plan::load_file(&f).unwrap();
        assert!(
            ft.diagnostics
                .iter()
                .all(|d| d.severity != kpatrol::diag::Severity::Error),
            "{f:?}: {:?}",
            ft.diagnostics
        );
        out.extend(ft.plans);
    }
    out
}

/// Every example: jobs/ and the render fixtures, with the Netdns/AppHttpHealthy tasks of
/// kdoctor's documentation shapes.
fn examples() -> Vec<Plan> {
    let mut p = plans(&[root().join("jobs"), root().join("tests/fixtures/render")]);
    p.retain(|plan| plan.mode.renders());
    // file paths differ between machines; names and content do not
    for plan in &mut p {
        plan.origin.file = PathBuf::from(plan.origin.file.file_name().unwrap());
    }
    p
}

fn rendered() -> Rendered {
    render(
        &examples(),
        &RenderOptions {
            image: "registry.example/kpatrol:test".into(),
        },
    )
    .expect("examples render")
}

fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .flat_map(|d| d.split("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str::<Value>(d).unwrap())
        .collect()
}

/// kubernetes-validate: from the test venv (.ci/run and scripts/test install it) or PATH.
fn kubernetes_validate() -> PathBuf {
    let venv = root().join(".venv-test/bin/kubernetes-validate");
    if venv.exists() {
        return venv;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubernetes-validate"))
            .find(|p| p.exists())
    });
    found.expect("kubernetes-validate is needed: scripts/test installs it into .venv-test (pip install kubernetes-validate==1.37.0)")
}

pub fn schema_check(dir: &Path) {
    let tool = kubernetes_validate();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    assert!(!files.is_empty());
    for minor in MINORS {
        let out = Command::new(&tool)
            .args(["--strict", "--no-warn", "-k", minor])
            .args(&files)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {minor} schema:\n{text}");
        assert!(
            !text.contains("ERROR") && !text.contains("failed"),
            "Kubernetes {minor} schema:\n{text}"
        );
        assert!(text.contains("passed"), "{text}");
    }
}

#[test]
fn every_manifest_of_every_example_passes_the_kubernetes_schema_in_strict_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base");
    kpatrol::cli::render_files(&rendered(), &out).unwrap();
    schema_check(&out);
}

/// Pod Security Standards, "restricted" profile, as far as a pod spec shows it.
fn restricted_problems(pod: &Value) -> Vec<String> {
    let mut p = Vec::new();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == Value::Bool(true) {
            p.push(format!("{host} is on"));
        }
    }
    let psc = &pod["securityContext"];
    if psc["seccompProfile"]["type"] != "RuntimeDefault" && psc["seccompProfile"]["type"] != "Localhost" {
        p.push("pod seccompProfile is not RuntimeDefault".into());
    }
    if psc["runAsUser"] == 0 {
        p.push("pod runs as root".into());
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let allowed = [
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        ];
        let kinds: Vec<&String> = v.as_object().unwrap().keys().filter(|k| *k != "name").collect();
        if !kinds.iter().all(|k| allowed.contains(&k.as_str())) {
            p.push(format!("volume type {kinds:?}"));
        }
    }
    for c in pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
    {
        let sc = &c["securityContext"];
        if sc["privileged"] == Value::Bool(true) {
            p.push("privileged".into());
        }
        if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
            p.push("allowPrivilegeEscalation is not false".into());
        }
        let non_root = sc["runAsNonRoot"] == Value::Bool(true) || psc["runAsNonRoot"] == Value::Bool(true);
        if !non_root {
            p.push("runAsNonRoot is not true".into());
        }
        let drops: Vec<&str> = sc["capabilities"]["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if !drops.contains(&"ALL") {
            p.push("capabilities do not drop ALL".into());
        }
        for add in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                p.push(format!("adds capability {add}"));
            }
        }
        if sc["readOnlyRootFilesystem"] != Value::Bool(true) {
            p.push("root filesystem is writable".into());
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port.get("hostPort").is_some() {
                p.push("hostPort".into());
            }
        }
        if c["resources"]["limits"].is_null() {
            p.push("no resource limits".into());
        }
    }
    p
}

/// Every pod template in `objs`: CronJob and Job templates, and the agents' Job the
/// launcher creates (kept in the task ConfigMap).
fn pods(objs: &[Value]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for o in objs {
        let name = format!(
            "{}/{}",
            o["kind"].as_str().unwrap(),
            o["metadata"]["name"].as_str().unwrap()
        );
        match o["kind"].as_str().unwrap() {
            "CronJob" => out.push((name, o["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone())),
            "Job" => out.push((name, o["spec"]["template"]["spec"].clone())),
            "ConfigMap" => {
                if let Some(t) = o["data"]["agents-job.yaml"].as_str() {
                    let spec: Value = serde_yaml_ng::from_str(t).unwrap();
                    out.push((format!("{name} agents"), spec["template"]["spec"].clone()));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_pod_meets_pod_security_restricted() {
    let r = rendered();
    let mut seen = 0;
    for (file, text) in r.files.iter().filter(|(f, _)| *f != "kustomization.yaml") {
        for (name, pod) in pods(&docs(text)) {
            seen += 1;
            assert_eq!(restricted_problems(&pod), Vec::<String>::new(), "{file} {name}");
        }
    }
    assert!(seen >= 9, "{seen} pods");
    // hostNetwork is the documented exception, and the check sees it
    let mut p = examples().into_iter().find(|p| p.name == "http-body").unwrap();
    p.agents.host_network = true;
    let r = render(&[p], &RenderOptions::default()).unwrap();
    assert!(r.warnings.iter().any(|w| w.message.contains("hostNetwork")));
    let text = r.files.values().find(|t| t.contains("CronJob")).unwrap();
    let problems: Vec<String> = pods(&docs(text))
        .into_iter()
        .flat_map(|(_, p)| restricted_problems(&p))
        .collect();
    assert_eq!(problems, ["hostNetwork is on"]);
}

#[test]
fn rendering_is_deterministic() {
    let a = rendered();
    let b = rendered();
    assert_eq!(a, b);
    // and does not depend on the order tasks come in
    let mut p = examples();
    p.reverse();
    let c = render(
        &p,
        &RenderOptions {
            image: "registry.example/kpatrol:test".into(),
        },
    )
    .unwrap();
    assert_eq!(a.files, c.files);
}

/// A one-round Job's pod template is immutable: the Job is named by what it runs, so a new
/// image or a changed task is a new Job, and the same task the same Job.
#[test]
fn a_one_round_job_is_named_by_what_it_runs() {
    let job_names = |image: &str, plans: &[Plan]| -> Vec<String> {
        render(plans, &RenderOptions { image: image.into() })
            .unwrap()
            .objects
            .iter()
            .filter(|o| o["kind"] == "Job")
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("once.yaml");
    std::fs::write(
        &f,
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: once}\nspec:\n  pressure: {qps: 5}\n  targets: [{url: \"http://127.0.0.1:9/\"}]\n",
    )
    .unwrap();
    let once = plans(&[f]);
    let a = job_names("registry.example/kpatrol:1", &once);
    assert_eq!(a.len(), 1);
    assert!(a[0].starts_with("once-") && a[0].len() == "once-".len() + 8, "{a:?}");
    assert_eq!(a, job_names("registry.example/kpatrol:1", &once), "same task, same Job");
    assert_ne!(
        a,
        job_names("registry.example/kpatrol:2", &once),
        "a new image is a new Job"
    );
    let mut changed = once.clone();
    changed[0].origin.document["spec"]["pressure"]["qps"] = serde_json::json!(7);
    assert_ne!(
        a,
        job_names("registry.example/kpatrol:1", &changed),
        "a changed task is a new Job"
    );
}

/// A task's own affinity adds to the one-agent-per-node rule; it does not replace it.
#[test]
fn a_per_node_task_affinity_keeps_one_agent_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("aff.yaml");
    std::fs::write(
        &f,
        "apiVersion: kpatrol.dev/v1\nkind: DnsCheck\nmetadata: {name: aff}\nspec:\n  schedule: \"@every 1h\"\n  agents:\n    perNode: {}\n    affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}\n  targets: [{server: \"127.0.0.1\", queries: [{name: a.example}]}]\n",
    )
    .unwrap();
    let r = render(&plans(&[f]), &RenderOptions::default()).unwrap();
    let cm = r
        .objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "aff-task")
        .unwrap();
    let template: Value = serde_yaml_ng::from_str(cm["data"]["agents-job.yaml"].as_str().unwrap()).unwrap();
    let affinity = &template["template"]["spec"]["affinity"];
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0]["key"],
        "zone"
    );
    assert_eq!(
        affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname",
        "{affinity}"
    );
}

#[test]
fn snapshots_of_the_rendered_examples() {
    let r = rendered();
    for (file, text) in &r.files {
        insta::assert_snapshot!(file.clone(), text);
    }
}

#[test]
fn rbac_only_where_the_mode_needs_it() {
    let r = rendered();
    let kinds = |file: &str| -> Vec<String> {
        docs(&r.files[file])
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect()
    };
    // a fixed number of agents, rounds forever: no API access at all
    assert_eq!(kinds("platform-api-health.yaml"), ["ConfigMap", "CronJob"]);
    let cj = &docs(&r.files["platform-api-health.yaml"])[1];
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    // counted rounds: list Jobs, get and patch only its own CronJob
    let reg = docs(&r.files["kpatrol-registry.yaml"]);
    let role = reg.iter().find(|o| o["kind"] == "Role").unwrap();
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": ["registry"], "verbs": ["get", "patch"]}
        ])
    );
    assert!(!reg.iter().any(|o| o["kind"] == "ClusterRole"));
    // agents on every node: the launcher lists nodes (the one cluster-wide right) and runs the Job
    let dns = docs(&r.files["kpatrol-coredns-counted.yaml"]);
    let cr = dns.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    assert_eq!(
        cr["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}])
    );
    let cm = dns.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let agents: Value = serde_yaml_ng::from_str(cm["data"]["agents-job.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        agents["template"]["spec"]["automountServiceAccountToken"], false,
        "agents need no API"
    );
}

#[test]
fn workloads_follow_the_task() {
    let r = rendered();
    let api = docs(&r.files["platform-api-health.yaml"]);
    let cj = api.iter().find(|o| o["kind"] == "CronJob").unwrap();
    let spec = &cj["spec"];
    assert_eq!(spec["schedule"], "*/10 * * * *");
    assert_eq!(spec["timeZone"], "Europe/Berlin");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(
        (
            job["completionMode"].as_str(),
            job["completions"].as_u64(),
            job["parallelism"].as_u64()
        ),
        (Some("Indexed"), Some(3), Some(3))
    );
    // no retries, and one agent's failure does not stop the others
    assert_eq!(
        (job["backoffLimitPerIndex"].as_u64(), job["maxFailedIndexes"].as_u64()),
        (Some(0), Some(3))
    );
    assert!(job.get("backoffLimit").is_none());
    // the round's timeout plus a minute to start and report
    assert_eq!(job["activeDeadlineSeconds"], 180);
    assert_eq!(job["ttlSecondsAfterFinished"], 86400);
    let pod = &job["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["command"], serde_json::json!(["kpatrol-probe"]));
    assert_eq!(c["args"][0], "http");
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        [
            "/etc/kpatrol/task",
            "/etc/kpatrol/secrets/api-ca",
            "/etc/kpatrol/secrets/api-token",
            "/etc/kpatrol/configmaps/echo-body"
        ]
    );
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for e in [
        "KPATROL_POD_NAME",
        "KPATROL_NODE_NAME",
        "KPATROL_NAMESPACE",
        "KPATROL_JOB_NAME",
        "KPATROL_RESOURCE_ATTRIBUTES",
    ] {
        assert!(env.contains(&e), "{e}");
    }
    let attrs = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KPATROL_RESOURCE_ATTRIBUTES")
        .unwrap()["value"]
        .as_str()
        .unwrap();
    assert!(
        attrs.contains("k8s.cronjob.name=api-health") && attrs.contains("kpatrol.label.team=platform"),
        "{attrs}"
    );
    // the task a pod reads is the task as written, without kdoctor's status
    let cm = api.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let task: Value = serde_yaml_ng::from_str(cm["data"]["task.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(task["metadata"]["name"], "api-health");
    // one round: a Job; kdoctor's "0 5" with roundNumber -1: every 5 minutes
    let netdns = docs(&r.files["kpatrol-netdns-netdns-once.yaml"]);
    assert!(netdns.iter().any(|o| o["kind"] == "Job"));
    let ahh = docs(&r.files["kpatrol-apphttphealthy-http-body.yaml"]);
    let cj = ahh.iter().find(|o| o["kind"] == "CronJob").unwrap();
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["completions"], 2,
        "Deployment with 2 replicas: 2 agents"
    );
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["example.com/team"], "web");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["memory"], "256Mi");
    // counted rounds are annotated for the probe that suspends the CronJob
    let reg = docs(&r.files["kpatrol-registry.yaml"]);
    let cj = reg.iter().find(|o| o["kind"] == "CronJob").unwrap();
    assert_eq!(cj["metadata"]["annotations"]["kpatrol.dev/rounds"], "24");
    assert_eq!(cj["spec"]["schedule"], "0 * * * *");
}

#[test]
fn bad_tasks_render_nothing_and_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {name: seven}\nspec:\n  schedule: {schedule: \"0 7\", roundTimeoutMinute: 5, roundNumber: -1}\n  target: {host: http://a.example, method: GET}\n",
    )
    .unwrap();
    let good = root().join("tests/fixtures/render/api-health.yaml");
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["render", "-o"])
        .arg(&out)
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.yaml:5:24: spec.schedule.schedule: `0 7` has no CronJob equivalent"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    // a body file cannot travel to a pod
    std::fs::write(dir.path().join("body.json"), "{}").unwrap();
    std::fs::write(
        &bad,
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: local}\nspec:\n  targets:\n    - url: http://a.example\n      bodyFile: body.json\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["render", "-o"])
        .arg(&out)
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        err.contains("bad.yaml:7:17: spec.targets[0].bodyFile: body file names a local file, which a pod cannot read"),
        "{err}"
    );
    // invalid tasks: validate's messages, nothing written
    std::fs::write(&bad, "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: Bad_Name}\nspec:\n  agents: {count: 0}\n  targets: [{url: \"http://a/\"}]\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["render", "-o"])
        .arg(&out)
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        err.contains("bad.yaml:3:18: metadata.name: `Bad_Name` is not a valid Kubernetes name"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:5:19: spec.agents.count: 0 agents"), "{err}");
    assert!(!out.exists());
}

#[test]
fn render_replaces_only_what_it_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tasks");
    let r = rendered();
    kpatrol::cli::render_files(&r, &out).unwrap();
    let first: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(first.len() > 5);
    // re-render a subset: files of tasks that are gone go too
    let one = render(&examples()[..1], &RenderOptions::default()).unwrap();
    kpatrol::cli::render_files(&one, &out).unwrap();
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        3,
        "kustomization, one task, the marker"
    );
    // a directory kpatrol did not render is left alone
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("keep.yaml"), "x").unwrap();
    let err = kpatrol::cli::render_files(&one, &mine).unwrap_err();
    assert!(err.to_string().contains("was not rendered by kpatrol"), "{err}");
    assert!(mine.join("keep.yaml").exists());
}

#[test]
fn stdout_rendering_for_plugins() {
    let out = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .arg("render")
        .arg(root().join("tests/fixtures/render/registry-count.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<String> = docs(&text)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"]);
}

#[test]
fn names_fit_kubernetes_limits() {
    let mut p = examples().into_iter().find(|p| p.name == "api-health").unwrap();
    // a Secret named the cert-manager way, a long ConfigMap name
    if let kpatrol::plan::Mode::Http(h) = &mut p.mode {
        h.targets[0].tls.secret = Some("api.example.com-tls".into());
        h.targets[1].body = kpatrol::modes::http::Body::ConfigMapKey {
            name: "b".repeat(70),
            key: "k".into(),
        };
    }
    let r = render(&[p], &RenderOptions::default()).unwrap();
    let text = r.files.values().find(|t| t.contains("CronJob")).unwrap();
    let cj = docs(text).into_iter().find(|o| o["kind"] == "CronJob").unwrap();
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for v in pod["volumes"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert!(
            name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "volume {name}"
        );
    }
    let mounts: Vec<&str> = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&"/etc/kpatrol/secrets/api.example.com-tls"),
        "{mounts:?}"
    );
    // long kdoctor names: the CronJob's Jobs and their pods' hostnames stay within 63
    let mut k = examples().into_iter().find(|p| p.name == "http-body").unwrap();
    k.name = "app.http.checks.for.the.payment.service.in.eu-west-1.region".into();
    let base = kpatrol::render::base_name(&k);
    assert!(base.len() <= 46, "{base}");
    assert!(base.len() + 11 + 1 + 5 <= 63);
}
