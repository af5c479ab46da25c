//! The kustomize base and overlays users start from: every overlay builds with
//! `kubectl kustomize` and passes the Kubernetes schema; the committed base matches a fresh
//! render of jobs/cluster; the GitOps examples have the fields Argo CD and Flux need.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubernetes_validate() -> PathBuf {
    let venv = root().join(".venv-test/bin/kubernetes-validate");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("kubernetes-validate"))
                .find(|p| p.exists())
        })
        .expect("kubernetes-validate is needed: scripts/test installs it into .venv-test")
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn every_overlay_builds_and_passes_the_schema() {
    let overlays = root().join("kustomize/overlays");
    let mut built = 0;
    for entry in std::fs::read_dir(&overlays).unwrap() {
        let dir = entry.unwrap().path();
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .expect("kubectl (with kustomize) is needed");
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let objs = docs(&text);
        assert!(objs.iter().any(|o| o["kind"] == "CronJob"), "{}", dir.display());
        assert!(objs.iter().all(|o| o["kind"] == "Namespace"
            || o["kind"].as_str().unwrap().starts_with("Cluster")
            || o["metadata"]["namespace"] == "kpatrol"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &text).unwrap();
        for minor in ["1.33", "1.37"] {
            let v = Command::new(kubernetes_validate())
                .args(["--strict", "--no-warn", "-k", minor])
                .arg(file.path())
                .output()
                .unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            );
            assert!(
                v.status.success() && !report.contains("ERROR"),
                "{} on {minor}:\n{report}",
                dir.display()
            );
        }
        built += 1;
    }
    assert!(built >= 2, "at least two overlays");
}

#[test]
fn overlays_change_what_users_change() {
    let build = |o: &str| {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(root().join("kustomize/overlays").join(o))
            .output()
            .unwrap();
        docs(&String::from_utf8(out.stdout).unwrap())
    };
    let staging = build("staging");
    let api = staging
        .iter()
        .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "api-health")
        .unwrap();
    assert_eq!(api["spec"]["schedule"], "*/5 * * * *");
    let c = &api["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/kpatrol/kpatrol:0.1.0-rc.1");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.ends_with(&["--qps", "20"]), "{args:?}");
    let otel = staging
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "kpatrol-otel")
        .unwrap();
    assert!(
        otel["data"]["OTEL_RESOURCE_ATTRIBUTES"]
            .as_str()
            .unwrap()
            .contains("k8s.cluster.name=staging-eu1")
    );
    let prod = build("production");
    let otel = prod
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "kpatrol-otel")
        .unwrap();
    assert!(
        otel["data"]["OTEL_RESOURCE_ATTRIBUTES"]
            .as_str()
            .unwrap()
            .contains("k8s.cluster.name=prod-eu1")
    );
    let dns = prod
        .iter()
        .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "coredns")
        .unwrap();
    assert_eq!(
        dns["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["kpatrol.dev/cluster"],
        "prod-eu1"
    );
}

#[test]
fn the_committed_base_is_the_render_of_jobs_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tasks");
    let run = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["render", "-o"])
        .arg(&out)
        .arg(root().join("jobs/cluster"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let committed = root().join("kustomize/base/tasks");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out), names(&committed));
    for n in names(&out) {
        assert_eq!(
            std::fs::read_to_string(out.join(&n)).unwrap(),
            std::fs::read_to_string(committed.join(&n)).unwrap(),
            "{n} differs: run `kpatrol render jobs/cluster -o kustomize/base/tasks`"
        );
    }
}

#[test]
fn gitops_examples_have_what_argo_cd_and_flux_need() {
    let read = |f: &str| docs(&std::fs::read_to_string(root().join("kustomize/gitops").join(f)).unwrap());
    for f in ["argocd-application.yaml", "argocd-application-plugin.yaml"] {
        let app = &read(f)[0];
        assert_eq!(
            (app["apiVersion"].as_str(), app["kind"].as_str()),
            (Some("argoproj.io/v1alpha1"), Some("Application"))
        );
        let src = &app["spec"]["source"];
        for k in ["repoURL", "targetRevision", "path"] {
            assert!(src[k].is_string(), "{f}: spec.source.{k}");
        }
        assert!(
            app["spec"]["destination"]["namespace"].is_string() && app["spec"]["project"].is_string(),
            "{f}"
        );
        let path = root().join(src["path"].as_str().unwrap());
        assert!(path.is_dir(), "{f}: {} exists in this repository", path.display());
    }
    let plugin = &read("argocd-application-plugin.yaml")[0];
    let cmp = &read("argocd-cmp-plugin.yaml")[0];
    assert_eq!(cmp["kind"], "ConfigManagementPlugin");
    assert_eq!(
        plugin["spec"]["source"]["plugin"]["name"].as_str().unwrap(),
        format!(
            "{}-{}",
            cmp["metadata"]["name"].as_str().unwrap(),
            cmp["spec"]["version"].as_str().unwrap()
        )
    );
    let generate: Vec<&str> = cmp["spec"]["generate"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(generate.join(" ").contains("kpatrol render"), "{generate:?}");
    let flux = read("flux.yaml");
    let repo = flux.iter().find(|o| o["kind"] == "GitRepository").unwrap();
    let ks = flux.iter().find(|o| o["kind"] == "Kustomization").unwrap();
    assert_eq!(ks["apiVersion"], "kustomize.toolkit.fluxcd.io/v1");
    assert_eq!(ks["spec"]["sourceRef"]["name"], repo["metadata"]["name"]);
    for k in ["interval", "path", "prune"] {
        assert!(!ks["spec"][k].is_null(), "spec.{k}");
    }
    assert!(root().join(ks["spec"]["path"].as_str().unwrap()).is_dir());
    // the sidecar patch is a valid Deployment fragment with a restricted container
    let patch = &read("argocd-repo-server-patch.yaml")[0];
    let sc = &patch["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
}
