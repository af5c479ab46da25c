//! The Kubernetes API seam, against kube-rs's mock service: the requests the round launcher
//! and round counting send (method, path, field manager, content type, body), answered with
//! the shapes a real API server returns. apply, diff and prune are tested on a real control
//! plane (tests/k8s.rs); these go there too as the test kubelet runs their pods.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    body: Value,
}

type Route = dyn Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync;

/// A fake API server answering with `route`; returns the client and the requests it saw.
fn fake(route: Arc<Route>) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            let (code, answer) = route(&method, &uri, &body);
            s2.lock().unwrap().push(Seen { method, uri, body });
            send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(svc, "kpatrol"), seen)
}

fn list(kind: &str, items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

fn pod(name: &str, node: &str, code: i32, message: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "kpatrol"}, "spec": {"nodeName": node, "containers": [{"name": "probe", "image": "x"}]},
        "status": {"containerStatuses": [{"name": "probe", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "message": message}}}]}})
}

#[tokio::test]
async fn the_launcher_starts_one_agent_per_node_and_judges_the_round() {
    let agents = kpatrol::cluster::round::agents_job_name(Some("dns-29000"), std::time::SystemTime::now());
    assert!(agents.len() + 5 <= 63, "room for the pods' index: {agents}");
    let agents_path = format!("/apis/batch/v1/namespaces/kpatrol/jobs/{agents}");
    let agents2 = agents.clone();
    let template = json!({"completionMode": "Indexed", "completions": 1, "parallelism": 1, "backoffLimit": 0,
        "template": {"metadata": {"labels": {"kpatrol.dev/task": "dns"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "probe", "image": "x", "args": ["dns"]}]}}});
    let route: Arc<Route> = Arc::new(move |method, uri, body| {
        let path = uri.split('?').next().unwrap();
        match (method, path) {
            ("GET", "/api/v1/nodes") => list(
                "Node",
                vec![json!({"metadata": {"name": "n1"}}), json!({"metadata": {"name": "n2"}})],
            ),
            ("GET", "/apis/batch/v1/namespaces/kpatrol/jobs/dns-29000") => (
                200,
                json!({"metadata": {"name": "dns-29000", "namespace": "kpatrol", "uid": "launcher-uid"}}),
            ),
            ("POST", "/apis/batch/v1/namespaces/kpatrol/jobs") => (201, body.clone()),
            ("GET", "/api/v1/namespaces/kpatrol/pods/dns-29000-launcher") => (
                200,
                json!({"metadata": {"name": "dns-29000-launcher",
                "labels": {"kpatrol.dev/cluster": "prod-eu1", "batch.kubernetes.io/job-name": "dns-29000", "app.kubernetes.io/component": "launcher"}},
                "spec": {"containers": [{"name": "launcher", "image": "registry.example/kpatrol:1.2.3"}]}}),
            ),
            ("GET", p) if p == agents_path => (
                200,
                json!({"metadata": {"name": agents2}, "spec": {"completions": 2, "template": {"spec": {"containers": []}}}, "status": {"succeeded": 1, "failed": 1}}),
            ),
            ("GET", "/api/v1/namespaces/kpatrol/pods") => list(
                "Pod",
                vec![
                    pod("a-0", "n1", 0, "{\"verdict\":\"pass\"}"),
                    pod("a-1", "n2", 1, "{\"verdict\":\"fail\"}"),
                ],
            ),
            _ => (500, json!({"uri": uri})),
        }
    });
    let (client, seen) = fake(route);
    let launch = kpatrol::cluster::round::Launch {
        namespace: "kpatrol".into(),
        node_selector: [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
        template,
        forward: vec!["--qps".into(), "5".into()],
        env: vec![(
            "TRACEPARENT".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        )],
        own_job: Some("dns-29000".into()),
        own_pod: Some("dns-29000-launcher".into()),
        deadline: std::time::Duration::from_secs(5),
        poll: std::time::Duration::from_millis(10),
    };
    let v = kpatrol::cluster::round::launch(&client, &launch).await.unwrap();
    assert!(!v.pass);
    assert_eq!((v.expected, v.missing), (2, 0));
    assert_eq!(v.failed_nodes, ["n2"]);
    assert_eq!(
        v.agents[1]
            .message
            .as_ref()
            .and_then(|m| m.summary())
            .map(|s| s.verdict),
        Some(kpatrol::report::RoundOutcome::Fail)
    );
    let seen = seen.lock().unwrap().clone();
    let nodes = seen.iter().find(|s| s.uri.starts_with("/api/v1/nodes")).unwrap();
    assert!(
        nodes.uri.contains("labelSelector=kubernetes.io%2Fos%3Dlinux"),
        "{}",
        nodes.uri
    );
    let post = seen.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(post.body["spec"]["completions"], 2);
    // the agents run the launcher's image and carry its own labels (kustomize's reach them)
    assert_eq!(
        post.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/kpatrol:1.2.3"
    );
    let labels = &post.body["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["kpatrol.dev/cluster"], "prod-eu1");
    assert!(
        labels.get("batch.kubernetes.io/job-name").is_none() && labels.get("app.kubernetes.io/component").is_none()
    );
    assert!(
        post.body["metadata"]["ownerReferences"][0]
            .get("blockOwnerDeletion")
            .is_none()
    );
    assert_eq!(post.body["spec"]["parallelism"], 2);
    assert_eq!(post.body["metadata"]["ownerReferences"][0]["uid"], "launcher-uid");
    assert_eq!(
        post.body["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["dns", "--qps", "5"])
    );
    let pods = seen
        .iter()
        .find(|s| s.uri.starts_with("/api/v1/namespaces/kpatrol/pods?"))
        .unwrap();
    assert!(
        pods.uri
            .contains(&format!("labelSelector=batch.kubernetes.io%2Fjob-name%3D{agents}")),
        "{}",
        pods.uri
    );
}

#[tokio::test]
async fn status_and_report_read_jobs_and_termination_messages() {
    let job = |name: &str, start: &str, status: Value| {
        json!({"metadata": {"name": name, "namespace": "kpatrol", "labels": {"kpatrol.dev/task": "web", "kpatrol.dev/kind": "HttpCheck", "app.kubernetes.io/managed-by": "kpatrol"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "web", "uid": "u"}]},
            "spec": {"completions": 2, "template": {"spec": {"containers": []}}}, "status": {"startTime": start, "completionTime": start, "succeeded": status["succeeded"], "failed": status["failed"]}})
    };
    let jobs = vec![
        job("web-100", "2026-11-25T01:00:00Z", json!({"succeeded": 2})),
        job("web-200", "2026-11-25T01:10:00Z", json!({"succeeded": 1, "failed": 1})),
    ];
    let cronjob = json!({"metadata": {"name": "web", "namespace": "kpatrol", "labels": {"kpatrol.dev/task": "web", "kpatrol.dev/kind": "HttpCheck"}},
        "spec": {"schedule": "*/10 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
        "status": {"lastScheduleTime": "2026-11-25T01:10:00Z", "lastSuccessfulTime": "2026-11-25T01:00:30Z"}});
    let brief = r#"{"v":1,"task":"web","verdict":"fail","targets":[{"name":"api","sent":100,"ok":90,"p99":12.5}],"failed":[{"target":"api","check":"success rate","observed":"90% (90/100)","threshold":"≥ 99.9% 200","pass":false}]}"#;
    let pods = vec![
        pod("web-200-0", "n1", 0, r#"{"v":1,"verdict":"pass","targets":[]}"#),
        pod("web-200-1", "n2", 1, brief),
    ];
    let route: Arc<Route> = Arc::new(move |method, uri, _| {
        let path = uri.split('?').next().unwrap();
        match (method, path) {
            ("GET", "/apis/batch/v1/cronjobs") => list("CronJob", vec![cronjob.clone()]),
            ("GET", "/apis/batch/v1/jobs") | ("GET", "/apis/batch/v1/namespaces/kpatrol/jobs") => {
                list("Job", jobs.clone())
            }
            ("GET", "/api/v1/namespaces/kpatrol/pods") => list("Pod", pods.clone()),
            _ => (500, json!({"uri": uri})),
        }
    });
    let (client, seen) = fake(route);
    let s = kpatrol::cluster::status::status(&client, None).await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (
            s[0].task.as_str(),
            s[0].rounds_done,
            s[0].last_verdict.as_str(),
            s[0].schedule.as_str()
        ),
        ("web", None, "fail", "*/10 * * * *"),
        "a task without `rounds: N` counts no rounds: its old Jobs go with the history limits"
    );
    assert_eq!(
        (s[0].last_scheduled.as_deref(), s[0].last_success.as_deref()),
        (Some("2026-11-25T01:10:00Z"), Some("2026-11-25T01:00:30Z"))
    );
    let d = kpatrol::cluster::status::report(&client, "kpatrol", "web")
        .await
        .unwrap();
    assert_eq!(
        (d.job.as_str(), d.verdict.as_str(), d.agents.len()),
        ("web-200", "fail", 2)
    );
    let text = kpatrol::cluster::status::report_table(&d);
    assert!(
        text.contains("n2") && text.contains("api success rate: 90% (90/100) (want ≥ 99.9% 200)"),
        "{text}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|s| s.uri.starts_with("/apis/batch/v1/cronjobs?")
        && s.uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkpatrol")));
    assert!(
        seen.iter()
            .any(|s| s.uri.contains("/pods?") && s.uri.contains("job-name%3Dweb-200"))
    );
}
