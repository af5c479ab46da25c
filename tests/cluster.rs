//! What the real control plane cannot be made to show in a test's time, against kube-rs's
//! mock service answering with the shapes a real API server returns. Everything else of the
//! cluster path (apply, diff, prune, round counting, rounds with real agents, the per-node
//! launcher, status and report) is tested on the real control plane in tests/k8s.rs.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// The URI of a request the fake server saw.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
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
            s2.lock().unwrap().push(Seen { uri });
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

/// Kept on the mock: a CronJob's `lastScheduleTime` and `lastSuccessfulTime` come only from
/// scheduled runs (minute resolution), and a round's history of two Jobs of which one failed
/// would take minutes on the real control plane; the rounds themselves are run for real in
/// tests/k8s.rs.
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
    let brief = r#"{"schemaVersion":2,"task":"web","verdict":"fail","targets":[{"name":"api","sent":100,"unsent":0,"answered":90,"failed":10,"succeeded":90,"successRate":0.9,"rate":10.0,"latencyMs":{"min":1.0,"mean":2.0,"p50":2.0,"p90":3.0,"p95":4.0,"p99":12.5,"max":20.0}}],"checks":[{"target":"api","check":"success rate","observed":"90% (90/100)","threshold":"≥ 99.9% 200","pass":false}]}"#;
    let pods = vec![
        pod("web-200-0", "n1", 0, r#"{"schemaVersion":2,"verdict":"pass"}"#),
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
        text.contains("n2")
            && text.contains("api sent 100 ok 90 p99 12.5ms")
            && text.contains("api success rate: 90% (90/100) (want ≥ 99.9% 200)"),
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
