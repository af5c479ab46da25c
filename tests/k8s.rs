//! The cluster commands on a real control plane (tests/support/cluster.rs): server-side
//! apply, diff from a server-side dry run, prune scoped by a set, the rendered examples as
//! the real API server (with its admission, Pod Security included) takes them, and
//! permissions as the real RBAC authorizer grants them. One namespace per test.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::Path;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::cluster::{
    cluster, job_finished, kpatrol, kpatrol_as, namespace, service_account_kubeconfig, start_round,
};

/// The cluster examples of jobs/cluster, copied to `dir` with their namespace set to `ns`.
fn examples_in(dir: &Path, ns: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/cluster");
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("namespace: kpatrol", &format!("namespace: {ns}"));
        std::fs::write(dir.join(p.file_name().unwrap()), text).unwrap();
    }
}

fn lines_with<'a>(out: &'a str, what: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.ends_with(what) || l.contains(&format!(" {what} ")))
        .collect()
}

#[tokio::test]
async fn apply_creates_by_server_side_apply_then_changes_nothing_and_diff_and_prune_follow_the_files() {
    let c = cluster().await;
    let ns = namespace(&c, "apply").await;
    let dir = tempfile::tempdir().unwrap();
    examples_in(dir.path(), &ns);
    let d = dir.path().to_str().unwrap();
    // sets are cluster-wide: named after the test's namespace
    let (set_a, set_b) = (format!("{ns}-a"), format!("{ns}-b"));

    // created, by server-side apply with field manager kpatrol
    let (code, out, err) = kpatrol(&c, &["apply", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!lines_with(&out, "created").is_empty(), "{out}");
    assert!(lines_with(&out, "updated").is_empty(), "{out}");
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), &ns);
    let cj = cronjobs.get("api-health").await.unwrap();
    let managers: Vec<(String, String)> = cj
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert!(managers.contains(&("kpatrol".into(), "Apply".into())), "{managers:?}");
    assert_eq!(cj.metadata.labels.unwrap()["kpatrol.dev/set"], set_a);

    // applying again changes nothing, and diff agrees
    let (code, out, err) = kpatrol(&c, &["apply", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");
    let (code, out, err) = kpatrol(&c, &["diff", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    // a field dropped from the task shows in diff, and apply removes it
    let f = dir.path().join("api-health.yaml");
    std::fs::write(
        &f,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("  timeZone: Europe/Berlin\n", ""),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["diff", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        out,
        format!("~ ConfigMap {ns}/api-health-task: data.task.yaml\n~ CronJob {ns}/api-health: spec.timeZone\n"),
        "{err}"
    );
    let (code, out, err) = kpatrol(&c, &["apply", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("CronJob {ns}/api-health updated (spec.timeZone)")),
        "{out}"
    );
    assert_eq!(cronjobs.get("api-health").await.unwrap().spec.unwrap().time_zone, None);

    // another team's task in the same namespace, in its own set
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("theirs.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: theirs, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  targets: [{{url: \"http://127.0.0.1:9/\"}}]\n"
        ),
    )
    .unwrap();
    let o = other.path().to_str().unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", o, "--set", &set_b]).await;
    assert_eq!(code, 0, "{out}\n{err}");

    // prune after removing one task deletes exactly its objects, nothing of the other set
    std::fs::remove_file(dir.path().join("coredns.yaml")).unwrap();
    let (code, out, err) = kpatrol(&c, &["prune", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let deleted: Vec<&str> = out.lines().collect();
    assert!(!deleted.is_empty(), "{err}");
    assert!(
        deleted.iter().all(|l| l.contains("coredns") && l.ends_with(" deleted")),
        "{out}"
    );
    assert!(
        deleted.first().unwrap().starts_with("CronJob "),
        "workloads first: {out}"
    );
    let left: Vec<String> = cronjobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cj| cj.metadata.name.unwrap())
        .collect();
    assert!(
        left.contains(&"api-health".to_string()) && left.contains(&"theirs".to_string()),
        "{left:?}"
    );
    assert!(!left.contains(&"coredns".to_string()), "{left:?}");
    let configmaps: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns);
    let theirs = configmaps
        .list(&ListParams::default().labels("kpatrol.dev/task=theirs"))
        .await
        .unwrap();
    assert!(!theirs.items.is_empty(), "the other set's ConfigMap stays");
    let (code, out, _) = kpatrol(&c, &["prune", d, "-n", &ns, "--set", &set_a]).await;
    assert_eq!(
        (code, out.trim()),
        (0, format!("nothing to prune in set {set_a}").as_str())
    );
}

/// `rounds: N` counts each round as it starts, under a resourceVersion precondition: two
/// rounds counted at once count twice, a retried pod of one round counts once, and the last
/// round suspends the CronJob.
#[tokio::test]
async fn rounds_are_counted_once_each_even_at_once_and_the_last_suspends_the_task() {
    use kpatrol::cluster::round::{Counted, count_round};
    let c = cluster().await;
    let ns = namespace(&c, "rounds").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("counted.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: counted, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  rounds: 3\n  targets: [{{url: \"http://127.0.0.1:9/\"}}]\n"
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (a, b) = tokio::join!(
        count_round(&c.client, &ns, "counted", "counted-1", 3),
        count_round(&c.client, &ns, "counted", "counted-2", 3)
    );
    let mut ns_counted = [a.unwrap(), b.unwrap()];
    ns_counted.sort_by_key(|x| format!("{x:?}"));
    assert_eq!(
        ns_counted,
        [
            Counted::Round { n: 1, last: false },
            Counted::Round { n: 2, last: false }
        ]
    );
    assert_eq!(
        count_round(&c.client, &ns, "counted", "counted-3", 3).await.unwrap(),
        Counted::Round { n: 3, last: true }
    );
    assert_eq!(
        count_round(&c.client, &ns, "counted", "counted-3", 3).await.unwrap(),
        Counted::Already,
        "a retried pod of round 3"
    );
    let cj = Api::<CronJob>::namespaced(c.client.clone(), &ns)
        .get("counted")
        .await
        .unwrap();
    assert_eq!(cj.spec.unwrap().suspend, Some(true));
    assert_eq!(cj.metadata.annotations.unwrap()["kpatrol.dev/rounds-done"], "3");
}

/// Every rendered example and every kdoctor example, as the real API server takes them
/// (a server-side dry run: admission, Pod Security `restricted`, the schema).
#[tokio::test]
async fn every_example_is_accepted_by_the_real_api_server() {
    let c = cluster().await;
    let ns = namespace(&c, "examples").await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    examples_in(dir.path(), &ns);
    for src in [
        root.join("jobs/local-http.yaml"),
        root.join("jobs/kdoctor-app-http.yaml"),
    ] {
        std::fs::copy(&src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    let (code, out, err) = kpatrol(&c, &["apply", "--dry-run", dir.path().to_str().unwrap(), "-n", &ns]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.lines().count() > 10, "{out}");
    let created = |out: &str| {
        out.lines()
            .all(|l| l.ends_with(" would be created") || l == format!("Namespace {ns} unchanged"))
    };
    assert!(created(&out), "{out}");
    // kdoctor's examples one by one (some share a name; some kpatrol refuses, as
    // tests/kdoctor.rs shows): each one kpatrol takes, the API server takes too
    let mut taken = 0;
    for e in std::fs::read_dir(root.join("tests/fixtures/kdoctor-examples")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        // NetReach (the mesh) does not render yet
        if p.extension().is_none_or(|x| x != "yaml") || text.contains("kind: NetReach") {
            continue;
        }
        let valid = std::process::Command::new(env!("CARGO_BIN_EXE_kpatrol"))
            .arg("validate")
            .arg(&p)
            .output()
            .unwrap();
        if !valid.status.success() {
            continue;
        }
        let (code, out, err) = kpatrol(&c, &["apply", "--dry-run", p.to_str().unwrap(), "-n", &ns]).await;
        assert_eq!(code, 0, "{}: {out}\n{err}", p.display());
        assert!(created(&out), "{}: {out}", p.display());
        taken += 1;
    }
    assert!(taken >= 5, "{taken} kdoctor examples");
    // and nothing was created
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), &ns);
    assert!(cronjobs.list(&ListParams::default()).await.unwrap().items.is_empty());
}

/// A CronJob's round started as `kubectl create job --from=cronjob/…` does: its indexed
/// agents run as processes on the test kubelet's nodes, send real traffic to a server on
/// loopback, and `kpatrol status` and `kpatrol report` read the round back.
#[tokio::test]
async fn a_round_runs_real_agents_and_status_and_report_read_it_back() {
    let c = cluster().await;
    let ns = namespace(&c, "round").await;
    let target = support::http(support::Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents: {{count: 2}}\n  pressure: {{qps: 20, duration: 1s}}\n  targets: [{{url: \"{}\"}}]\n",
            target.url("http", "/")
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "web", "web-manual-1").await;
    let job = job_finished(&c, &ns, "web-manual-1", Duration::from_secs(120)).await;
    assert_eq!(job.status.as_ref().unwrap().succeeded, Some(2), "{:?}", job.status);
    assert!(
        target.seen.requests.load(Ordering::SeqCst) >= 2 * 18,
        "both agents pressed the target"
    );

    let (code, out, err) = kpatrol(&c, &["status", "-n", &ns, "-o", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["task"], "web", "{out}");
    assert_eq!(status[0]["lastVerdict"], "pass", "{out}");
    assert_eq!(status[0]["lastJob"], "web-manual-1", "{out}");

    let (code, out, err) = kpatrol(&c, &["report", "web", "-n", &ns]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("round web-manual-1 PASS"), "{out}");
    // no matrix but a mesh's: --html says so and could not run
    let page = dir.path().join("web.html");
    let (html_code, _, html_err) = kpatrol(&c, &["report", "web", "-n", &ns, "--html", page.to_str().unwrap()]).await;
    assert_eq!(html_code, 2, "{html_err}");
    assert!(html_err.contains("round web-manual-1 kept no matrix"), "{html_err}");
    assert!(!page.exists());
    let agents: Vec<&str> = out.lines().filter(|l| l.starts_with("node-")).collect();
    assert_eq!(agents.len(), 2, "{out}");
    assert!(
        agents.iter().all(|l| l.contains(" 0 ") && l.contains(" pass ")),
        "{out}"
    );
}

/// Labels every node `kpatrol.dev/test-<ns>: yes` (a selector of this test's own, the
/// shared nodes otherwise unchanged); returns the nodes' names and the label's key.
async fn label_every_node(c: &support::cluster::Cluster, ns: &str) -> (Vec<String>, String) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let nodes: Api<Node> = Api::all(c.client.clone());
    let all: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    let label = format!("kpatrol.dev/test-{ns}");
    for n in &all {
        let patch = serde_json::json!({"metadata": {"labels": {label.as_str(): "yes"}}});
        nodes
            .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    (all, label)
}

/// A per-node task: the launcher, with its own token and exactly the rendered Role, lists
/// the nodes, names the one it cannot use (a taint the task does not tolerate), starts one
/// agent on each other node, and judges the round from their reports.
#[tokio::test]
async fn a_per_node_round_runs_an_agent_on_every_node_it_can_and_names_the_one_it_cannot() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let c = cluster().await;
    let ns = namespace(&c, "pernode").await;
    // a node of its own, tainted for this test only (the shared nodes stay as they are)
    let nodes: Api<Node> = Api::all(c.client.clone());
    let (all, label) = label_every_node(&c, &ns).await;
    assert!(all.len() >= 3, "the test kubelet runs 3 nodes: {all:?}");
    let tainted = all[0].clone();
    let taint =
        serde_json::json!({"spec": {"taints": [{"key": label.as_str(), "value": "x", "effect": "NoSchedule"}]}});
    nodes
        .patch(&tainted, &PatchParams::default(), &Patch::Merge(&taint))
        .await
        .unwrap();
    let target = support::http(support::Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("each.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: each, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents:\n    perNode: {{nodeSelector: {{{label}: \"yes\"}}}}\n    tolerations: []\n  pressure: {{qps: 20, duration: 1s}}\n  targets: [{{url: \"{}\"}}]\n",
            target.url("http", "/")
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "each", "each-manual-1").await;
    let job = job_finished(&c, &ns, "each-manual-1", Duration::from_secs(150)).await;
    // untaint before asserting, so a failure leaves the shared nodes clean
    let untaint = serde_json::json!({"spec": {"taints": null}});
    nodes
        .patch(&tainted, &PatchParams::default(), &Patch::Merge(&untaint))
        .await
        .unwrap();
    let (code, out, err) = kpatrol(&c, &["report", "each", "-n", &ns]).await;
    assert_eq!(
        job.status.as_ref().unwrap().succeeded,
        Some(1),
        "{:?}\n{out}\n{err}",
        job.status
    );
    assert_eq!(code, 0, "{out}\n{err}");
    // the launcher's line names the node it skipped; one agent ran on each other node
    assert!(
        out.contains(&format!(
            "{tainted}: taint {label}=x:NoSchedule not tolerated (skipped)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} agents, 0 missing, 0 failed", all.len() - 1)),
        "{out}"
    );
    let agent_nodes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("-a-"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut expected: Vec<&str> = all.iter().filter(|n| **n != tainted).map(String::as_str).collect();
    expected.sort();
    assert_eq!(agent_nodes, expected, "{out}");
    assert!(target.seen.requests.load(Ordering::SeqCst) >= (all.len() as u64 - 1) * 18);
}

/// A DiskCheck on every node: the launcher starts a disk agent on each, each measures its
/// folder (an emptyDir the test kubelet links; the task's path is a folder of this machine,
/// since the test kubelet does not rewrite paths inside the task) and the round passes with
/// every node named; nothing is left in the folder.
#[tokio::test]
async fn a_disk_check_runs_on_every_node_through_the_launcher() {
    let c = cluster().await;
    let ns = namespace(&c, "disk").await;
    let (all, label) = label_every_node(&c, &ns).await;
    let folder = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("disk.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: DiskCheck\nmetadata: {{name: disk, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents:\n    perNode: {{nodeSelector: {{{label}: \"yes\"}}}}\n  pressure: {{duration: 1s, timeout: 5s}}\n  expect: {{randRead: {{minIops: 1}}}}\n  targets: [{{name: scratch, path: \"{}\", size: 1Mi, measures: [fdatasync, randRead]}}]\n",
            folder.path().display()
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "disk", "disk-manual-1").await;
    let job = job_finished(&c, &ns, "disk-manual-1", Duration::from_secs(150)).await;
    let (code, out, err) = kpatrol(&c, &["report", "disk", "-n", &ns]).await;
    assert_eq!(
        job.status.as_ref().unwrap().succeeded,
        Some(1),
        "{:?}\n{out}\n{err}",
        job.status
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("{} agents, 0 missing, 0 failed", all.len())),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
    assert!(left.is_empty(), "left: {left:?}");
}

/// A per-node round in which one node's agent is stopped (its pod deleted, as an eviction
/// does): the round fails and its report names that node; the launcher still reports.
#[tokio::test]
async fn a_per_node_round_names_the_node_whose_agent_did_not_finish() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::DeleteParams;
    let c = cluster().await;
    let ns = namespace(&c, "lost").await;
    let target = support::http(support::Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lost.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: lost, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents: {{perNode: {{}}}}\n  pressure: {{qps: 5, duration: 6s}}\n  targets: [{{url: \"{}\"}}]\n",
            target.url("http", "/")
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "lost", "lost-manual-1").await;
    // wait, on a watch, for an agent pod running, then delete it
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let running = |p: &Pod| {
        p.metadata.name.as_deref().is_some_and(|n| n.contains("-a-"))
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    };
    let victim = support::cluster::pod_where(&c, &ns, running, Duration::from_secs(60)).await;
    let node = victim.spec.as_ref().unwrap().node_name.clone().unwrap();
    pods.delete(victim.metadata.name.as_deref().unwrap(), &DeleteParams::default())
        .await
        .unwrap();
    let job = job_finished(&c, &ns, "lost-manual-1", Duration::from_secs(120)).await;
    assert_eq!(
        job.status.as_ref().unwrap().failed,
        Some(1),
        "the launcher judged a fail: {:?}",
        job.status
    );
    let (code, out, err) = kpatrol(&c, &["report", "lost", "-n", &ns]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains(&format!("{node} no report")) || out.contains(&format!("{node} fail (exit 1)")),
        "the report names {node}: {out}"
    );
}

/// Without permission, apply stops at the first object the real RBAC authorizer refuses,
/// names it, and says that nothing was applied before it and nothing after.
#[tokio::test]
async fn apply_without_permission_names_the_object_and_applies_nothing_after_it() {
    let c = cluster().await;
    let ns = namespace(&c, "noperm").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&c, &ns, "nobody", dir.path()).await;
    let tasks = tempfile::tempdir().unwrap();
    std::fs::write(
        tasks.path().join("t.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: t, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  targets: [{{url: \"http://127.0.0.1:9/\"}}]\n"
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol_as(&kubeconfig, &["apply", tasks.path().to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains(&format!("Namespace {ns}")) && err.contains("forbidden"),
        "{err}"
    );
    assert!(err.contains("stopped at object 1 of"), "{err}");
    assert_eq!(out, "", "nothing was applied");
}

/// The agents' Jobs the launcher builds from a rendered per-node task (with a kdoctor-style
/// node affinity of its own) are valid on the real API server, Pod Security admission
/// included: the round's first Job, and one pinned to the nodes the first left without an
/// agent (the API server takes one name per `matchFields` term: a unit test cannot see it).
#[tokio::test]
async fn the_agents_jobs_the_launcher_builds_are_accepted_by_the_real_api_server() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::PostParams;
    use serde::Deserialize;
    let c = cluster().await;
    let ns = namespace(&c, "pinned").await;
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("each.yaml");
    std::fs::write(
        &task,
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: each, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents:\n    perNode: {{}}\n    affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{{matchExpressions: [{{key: kubernetes.io/os, operator: In, values: [linux]}}]}}]}}}}}}\n  targets: [{{url: \"http://127.0.0.1:9/\"}}]\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["render", task.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let template: serde_json::Value = serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|d| serde_json::to_value(serde_yaml_ng::Value::deserialize(d).ok()?).ok())
        .find_map(|d| {
            let job = d.pointer("/data/agents-job.yaml")?.as_str()?;
            serde_yaml_ng::from_str(job).ok()
        })
        .expect("the task ConfigMap holds the agents' Job template");
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), &ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let nodes: Vec<String> = (0..3).map(|i| format!("node-{i}")).collect();
    for (name, pinned) in [("each-1-a", false), ("each-1-a2", true)] {
        let mut t = template.clone();
        kpatrol::cluster::round::scope_to_round(&mut t, name);
        if pinned {
            kpatrol::cluster::round::pin_to_nodes(&mut t, &nodes);
        }
        let job = kpatrol::cluster::round::agents_job(&t, name, &ns, nodes.len(), &[], &[], None).unwrap();
        let job: Job = serde_json::from_value(job).unwrap();
        let made = jobs.create(&dry, &job).await;
        assert!(made.is_ok(), "{name}: {made:?}");
        if pinned {
            let terms = serde_json::to_value(made.unwrap()).unwrap()
                ["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                .clone();
            assert_eq!(terms.as_array().map(Vec::len), Some(3), "{terms}");
        }
    }
}

/// A Mesh in the cluster: the launcher starts one agent on each of this test's nodes, sends
/// each its orders once all run (each agent on its pod's own address), gathers every row over
/// the control channel and judges the matrix: the round passes. In a second round one node's
/// agent is killed once it has its orders (its pod force-deleted): the round fails, ends well
/// before its deadline, and the launcher's report names that node.
#[tokio::test]
async fn a_mesh_round_passes_on_every_node_and_names_the_node_whose_agent_is_killed() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::DeleteParams;
    let c = cluster().await;
    let ns = namespace(&c, "mesh").await;
    let (all, label) = label_every_node(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: Mesh\nmetadata: {{name: mesh, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  roundTimeout: 60s\n  agents:\n    perNode: {{nodeSelector: {{{label}: \"yes\"}}}}\n  pressure: {{qps: 10, duration: 3s, timeout: 3s}}\n  expect: {{successRate: 1}}\n  targets: {{paths: [pod], families: [ipv4]}}\n"
        ),
    )
    .unwrap();
    // A timeout of 3 s: every attempt must succeed, and debug-built agents share two cores
    // with the control plane and the rest of the suite (with 1 s, one CI run saw an agent
    // miss one attempt to each of its two targets at once).
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "mesh", "mesh-manual-1").await;
    let job = job_finished(&c, &ns, "mesh-manual-1", Duration::from_secs(120)).await;
    let (code, out, err) = kpatrol(&c, &["report", "mesh", "-n", &ns]).await;
    assert_eq!(
        job.status.as_ref().unwrap().succeeded,
        Some(1),
        "the launcher judged a pass: {:?}\n{out}\n{err}",
        job.status
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("round mesh-manual-1 PASS"), "{out}");
    // and the matrix the launcher kept, as a heatmap
    assert!(out.contains("pod ipv4: source ↓ target →"), "{out}");

    // the second round: one agent killed once it presses
    start_round(&c, &ns, "mesh", "mesh-manual-2").await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let running = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("batch.kubernetes.io/job-name"))
            .is_some_and(|j| j.starts_with("mesh-manual-2-"))
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    };
    let victim = support::cluster::pod_where(&c, &ns, running, Duration::from_secs(60)).await;
    let node = victim.spec.as_ref().unwrap().node_name.clone().unwrap();
    assert!(all.contains(&node));
    // its orders came: the agent says so on stderr (its log in the test kubelet's folder)
    let log = c
        .kubeconfig
        .parent()
        .unwrap()
        .join("kubelet/pods")
        .join(format!(
            "{ns}_{}_{}",
            victim.metadata.name.as_deref().unwrap(),
            victim.metadata.uid.as_deref().unwrap()
        ))
        .join("probe.log");
    let by = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("orders: agent")) {
        assert!(
            std::time::Instant::now() < by,
            "no orders in {} within 60 s",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    pods.delete(
        victim.metadata.name.as_deref().unwrap(),
        &DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    let job = job_finished(&c, &ns, "mesh-manual-2", Duration::from_secs(120)).await;
    assert_eq!(
        job.status.as_ref().unwrap().failed,
        Some(1),
        "the launcher judged a fail: {:?}",
        job.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the round ended by its rows' due time, not its deadline: {:?}",
        started.elapsed()
    );
    let (code, out, err) = kpatrol(&c, &["report", "mesh", "-n", &ns]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("round mesh-manual-2 FAIL"), "{out}");
    assert!(out.contains(&node), "the report names {node}: {out}");
    // the round's matrix as the heatmap page, from the ConfigMap the launcher kept
    let page = dir.path().join("mesh.html");
    let (code, out, err) = kpatrol(&c, &["report", "mesh", "-n", &ns, "--html", page.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<span class=\"verdict fail\">FAIL</span>"), "{html}");
    assert!(
        html.contains(&format!("node {node}:")),
        "the page's findings name {node}: {html}"
    );
}

/// kdoctor's NetReach, unchanged, on nodes that are network namespaces: a control plane of
/// this test's own whose test kubelet (`--netns`) runs each node's pods in its node's
/// namespace (pod addresses 198.18.1.x and fd6b:7061::b:x, node addresses 198.18.0.x) and
/// writes kube-proxy's DNAT rules for the Services (and is the load balancer and the ingress
/// controller, and Multus for pods that ask for a second interface). The round presses pod IPs
/// and Multus interfaces over IPv4 and IPv6, the agents' ClusterIP, every node's NodePort, the
/// load balancer and the Ingress, and passes. In a second round one
/// node (not the launcher's) drops every packet that comes in: the round fails and the
/// launcher names that node.
#[tokio::test]
async fn a_kdoctor_netreach_runs_unchanged_on_nodes_in_network_namespaces_and_names_a_node_dropping_packets() {
    use k8s_openapi::api::core::v1::Pod;
    let own = support::cluster::own_cluster(3, "--netns").await;
    let c = &own.cluster;
    let ns = namespace(c, "netreach").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("netreach.yaml"),
        "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata:\n  name: mesh\nspec:\n  agentSpec:\n    annotation:\n      k8s.v1.cni.cncf.io/networks: kube-system/macvlan\n  schedule:\n    schedule: \"0 0 1 1 *\"\n    roundTimeoutMinute: 1\n    roundNumber: -1\n  request:\n    qps: 10\n    durationInSecond: 3\n    perRequestTimeoutInMS: 1000\n  expect:\n    successRate: 1\n    meanAccessDelayInMs: 1000\n  target:\n    ipv4: true\n    ipv6: true\n    endpoint: true\n    clusterIP: true\n    nodePort: true\n    loadBalancer: true\n    ingress: true\n    multusInterface: true\n",
    )
    .unwrap();
    let (code, out, err) = kpatrol(c, &["apply", "-n", &ns, dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let report_of = |job: &str| {
        // the launcher's report: the last JSON line of its log in the test kubelet's folder
        let pods = own.dir.path().join("kubelet/pods");
        let folder = std::fs::read_dir(&pods)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("{ns}_{job}-")) && !n.contains("-a-"))
            .unwrap_or_else(|| panic!("no launcher of {job} in {}", pods.display()));
        let log = std::fs::read_to_string(pods.join(folder).join("launcher.log")).unwrap();
        let json = log
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("{log}"));
        (serde_json::from_str::<serde_json::Value>(json).unwrap(), log)
    };

    start_round(c, &ns, "netreach-mesh", "nr-manual-1").await;
    let job = job_finished(c, &ns, "nr-manual-1", Duration::from_secs(120)).await;
    let (r, log) = report_of("nr-manual-1");
    assert_eq!(
        job.status.as_ref().unwrap().succeeded,
        Some(1),
        "{:?}\n{log}",
        job.status
    );
    assert_eq!(r["verdict"], "pass", "{log}");
    assert_eq!(r["network"], "cluster", "{log}");
    // pod and Multus over IPv4 and IPv6 and NodePort: 9 cells each; ClusterIP, the load
    // balancer and the Ingress (their addresses given by the test kubelet): each node's row
    assert_eq!(r["cells"], 54, "{log}");
    assert_eq!(r["failedCells"], 0, "{log}");
    assert!(
        log.contains("paths pod, clusterIP, nodePort, multus, loadBalancer, ingress (ipv4, ipv6)"),
        "{log}"
    );
    // the cluster is IPv4 only: what IPv6 cannot take is said, not failed
    assert!(
        log.contains("skipped clusterIP ipv6: the agents' Service has no IPv6 address"),
        "{log}"
    );
    let (code, out, err) = kpatrol(c, &["report", "netreach-mesh", "-n", &ns]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("round nr-manual-1 PASS"), "{out}");

    // the second round: a node that is not the launcher's drops whatever comes in
    start_round(c, &ns, "netreach-mesh", "nr-manual-2").await;
    let launcher = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("batch.kubernetes.io/job-name"))
            .map(String::as_str)
            == Some("nr-manual-2")
            && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
    };
    let l = support::cluster::pod_where(c, &ns, launcher, Duration::from_secs(60)).await;
    let launcher_node = l.spec.unwrap().node_name.unwrap();
    let bad = ["node-0", "node-1", "node-2"]
        .into_iter()
        .find(|n| *n != launcher_node)
        .unwrap();
    let netns = format!("kpatrol-{}-{}", own.kubelet_pid(), &bad["node-".len()..]);
    let drop_in = "table inet impair {\n  chain input {\n    type filter hook input priority -10; policy drop;\n    iif lo accept\n  }\n}\n";
    let mut nft = std::process::Command::new("ip")
        .args(["netns", "exec", &netns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), drop_in.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success(), "impairing {netns}");
    let job = job_finished(c, &ns, "nr-manual-2", Duration::from_secs(150)).await;
    let (r, log) = report_of("nr-manual-2");
    assert_eq!(job.status.as_ref().unwrap().failed, Some(1), "{:?}\n{log}", job.status);
    assert_eq!(r["verdict"], "fail", "{log}");
    let findings = r["findings"].to_string();
    assert!(
        findings.contains(&format!("node {bad}:")),
        "the report names {bad}: {log}"
    );
    let (code, out, err) = kpatrol(c, &["report", "netreach-mesh", "-n", &ns]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains(bad), "{out}");
}

/// A Mesh whose node selector matches no node could not run: its launcher exits 2 and its
/// report says why; no agent was started.
#[tokio::test]
async fn a_mesh_whose_node_selector_matches_no_node_could_not_run() {
    use k8s_openapi::api::batch::v1::Job;
    let c = cluster().await;
    let ns = namespace(&c, "nomesh").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: Mesh\nmetadata: {{name: none, namespace: {ns}}}\nspec:\n  schedule: \"@every 1h\"\n  agents:\n    perNode: {{nodeSelector: {{kpatrol.dev/no-such-node: \"yes\"}}}}\n  pressure: {{qps: 1, duration: 1s}}\n  targets: {{paths: [pod]}}\n"
        ),
    )
    .unwrap();
    let (code, out, err) = kpatrol(&c, &["apply", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    start_round(&c, &ns, "none", "none-manual-1").await;
    let job = job_finished(&c, &ns, "none-manual-1", Duration::from_secs(60)).await;
    assert_eq!(job.status.as_ref().unwrap().failed, Some(1), "{:?}", job.status);
    let (code, out, err) = kpatrol(&c, &["report", "none", "-n", &ns]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("no node can take an agent: no node matches the node selector kpatrol.dev/no-such-node=yes"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("none-manual-1") && l.contains(" 2 ")),
        "exit 2: {out}"
    );
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), &ns);
    assert_eq!(
        jobs.list(&Default::default()).await.unwrap().items.len(),
        1,
        "no agents' Job"
    );
}
