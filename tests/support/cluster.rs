//! The real control plane a test run shares (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and the test kubelet, started once by `scripts/test` through
//! `scripts/cluster up`, its admin kubeconfig in `KPATROL_TEST_KUBECONFIG`), and one
//! namespace per test, labelled for the restricted Pod Security level.

use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

/// Where the shared control plane is.
pub const KUBECONFIG_ENV: &str = "KPATROL_TEST_KUBECONFIG";

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

/// The shared control plane. Fails (never skips) when there is none: the cluster tests are
/// part of the suite.
pub async fn cluster() -> Cluster {
    let Some(kubeconfig) = std::env::var_os(KUBECONFIG_ENV).map(PathBuf::from) else {
        panic!(
            "{KUBECONFIG_ENV} is not set: the cluster tests need the control plane scripts/test starts \
             (or run `scripts/cluster up DIR` and export {KUBECONFIG_ENV}=DIR/kubeconfig)"
        )
    };
    let kc =
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let client = kube::Client::try_from(config).unwrap();
    Cluster { kubeconfig, client }
}

/// A fresh namespace for one test: `prefix` and a random suffix, labelled
/// `pod-security.kubernetes.io/enforce: restricted`.
pub async fn namespace(c: &Cluster, prefix: &str) -> String {
    let suffix: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos());
    let name = format!("{prefix}-{:x}", suffix & 0xff_ffff);
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    }))
    .unwrap();
    Api::<Namespace>::all(c.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    name
}

/// Runs `kpatrol` with `args` against the shared control plane (its kubeconfig given with
/// `--kubeconfig`), bounded in time; returns (exit code, stdout, stderr).
pub async fn kpatrol(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    kpatrol_as(&c.kubeconfig, args).await
}

/// [`kpatrol`] with another kubeconfig.
pub async fn kpatrol_as(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpatrol"));
    cmd.args(args).arg("--kubeconfig").arg(kubeconfig).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kpatrol {args:?} did not end within 60 s"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a round of a CronJob now, as `kubectl create job --from=cronjob/NAME JOB` does: a
/// Job from its template, owned by it, annotated as started by hand.
pub async fn start_round(c: &Cluster, ns: &str, cronjob: &str, job: &str) -> Job {
    let cj = Api::<CronJob>::namespaced(c.client.clone(), ns)
        .get(cronjob)
        .await
        .unwrap();
    let template = cj.spec.as_ref().unwrap().job_template.clone();
    let j: Job = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": job,
            "namespace": ns,
            "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()),
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                "uid": cj.metadata.uid, "controller": true}],
        },
        "spec": template.spec,
    }))
    .unwrap();
    Api::<Job>::namespaced(c.client.clone(), ns)
        .create(&PostParams::default(), &j)
        .await
        .unwrap_or_else(|e| panic!("Job {ns}/{job}: {e}"))
}

/// Waits, on a watch, until Job `name` has finished (Complete or Failed), at most `within`.
pub async fn job_finished(c: &Cluster, ns: &str, name: &str, within: Duration) -> Job {
    let jobs = Api::<Job>::namespaced(c.client.clone(), ns);
    let done = |j: &Job| {
        j.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
    };
    let wait = async {
        loop {
            let now = jobs.get(name).await.unwrap();
            if done(&now) {
                return now;
            }
            let rv = now.metadata.resource_version.clone().unwrap_or_default();
            let wp = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(30);
            let mut events = jobs.watch(&wp, &rv).await.unwrap().boxed();
            while let Some(e) = events.try_next().await.unwrap() {
                if let WatchEvent::Modified(j) | WatchEvent::Added(j) = e
                    && done(&j)
                {
                    return j;
                }
            }
        }
    };
    match tokio::time::timeout(within, wait).await {
        Ok(j) => j,
        Err(_) => {
            let now = jobs.get(name).await.unwrap();
            panic!("Job {ns}/{name} not finished within {within:?}: {:?}", now.status)
        }
    }
}

/// Waits, on a watch of the namespace's pods, for one that `test` accepts, at most `within`.
pub async fn pod_where(
    c: &Cluster,
    ns: &str,
    test: impl Fn(&k8s_openapi::api::core::v1::Pod) -> bool,
    within: Duration,
) -> k8s_openapi::api::core::v1::Pod {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.client.clone(), ns);
    let wait = async {
        loop {
            let list = pods.list(&Default::default()).await.unwrap();
            if let Some(p) = list.items.iter().find(|p| test(p)) {
                return p.clone();
            }
            let rv = list.metadata.resource_version.unwrap_or_default();
            let mut events = pods
                .watch(&WatchParams::default().timeout(30), &rv)
                .await
                .unwrap()
                .boxed();
            while let Some(e) = events.try_next().await.unwrap() {
                if let WatchEvent::Modified(p) | WatchEvent::Added(p) = e
                    && test(&p)
                {
                    return p;
                }
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| panic!("no such pod in {ns} within {within:?}"))
}

/// A kubeconfig for ServiceAccount `sa` of `ns` (created here, with no permissions of its
/// own): the control plane's server and CA, and a token minted through the TokenRequest API.
pub async fn service_account_kubeconfig(c: &Cluster, ns: &str, sa: &str, dir: &std::path::Path) -> PathBuf {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas = Api::<ServiceAccount>::namespaced(c.client.clone(), ns);
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": sa}})).unwrap();
    sas.create(&PostParams::default(), &account).await.unwrap();
    let request = http::Request::post(format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
            )
            .unwrap(),
        )
        .unwrap();
    let answer: serde_json::Value = c.client.request(request).await.unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    let admin: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa, "namespace": ns}}],
    });
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    path
}

/// A control plane of one test's own (`scripts/cluster up DIR --nodes N`, the test kubelet
/// started with `kubelet_args`), for a test whose nodes the shared one must not see; stopped
/// (`scripts/cluster down`) when dropped.
pub struct Own {
    pub cluster: Cluster,
    pub dir: tempfile::TempDir,
}

impl Own {
    /// The test kubelet's process id (from `scripts/cluster`'s pid file).
    pub fn kubelet_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.path().join("pids/kubelet.pid")).unwrap();
        text.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/cluster"))
            .arg("down")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .status();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts a control plane of the test's own with `nodes` nodes.
pub async fn own_cluster(nodes: u32, kubelet_args: &str) -> Own {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_kpatrol"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = tokio::process::Command::new(repo().join("scripts/cluster"))
        .arg("up")
        .arg(dir.path())
        .args(["--nodes", &nodes.to_string()])
        .env("KPATROL_KUBELET", bin_dir.join("examples/kubelet"))
        .env("KPATROL_BIN_DIR", &bin_dir)
        .env("KPATROL_KUBELET_ARGS", kubelet_args)
        .output()
        .await
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let own = Own {
        cluster: Cluster {
            kubeconfig: kubeconfig.clone(),
            client: kube::Client::try_from(
                kube::Config::from_custom_kubeconfig(
                    kube::config::Kubeconfig::read_from(&kubeconfig).unwrap_or_else(|e| {
                        panic!(
                            "scripts/cluster up: {e}\n{}\n{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        )
                    }),
                    &Default::default(),
                )
                .await
                .unwrap(),
            )
            .unwrap(),
        },
        dir,
    };
    assert!(
        out.status.success(),
        "scripts/cluster up: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    own
}
