//! Telemetry through a real collector: rotel on loopback forwarding to a sink the test
//! reads. Spans (names, parents, attributes, one trace id across agents) and metrics
//! (names, values matching the round's own counts), over gRPC and HTTP; a collector that is
//! down or a malformed endpoint changes neither the verdict nor the exit code, and costs at
//! most the bounded flush (or the per-export timeout, over either protocol). Malformed
//! settings never crash the probe, and no credential in them reaches any output.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::otel::{Pipeline, attr, points, spans};
use support::*;

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");
const PROBE: &str = env!("CARGO_BIN_EXE_kpatrol-probe");

fn two_targets(ok: &str, bad: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web, labels: {{team: platform}}}}\nspec:\n  pressure: {{qps: 20, duration: 500ms}}\n  expect: {{successRate: 1}}\n  targets:\n    - {{name: ok, url: \"{ok}\"}}\n    - {{name: bad, url: \"{bad}\"}}\n"
    )
}

fn otel_env(cmd: &mut tokio::process::Command, endpoint: &str, protocol: &str) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=test-cluster")
        .env_remove("KPATROL_JOB_NAME")
        .env_remove("TRACEPARENT");
}

async fn round_and_check(protocol: &str) {
    let pipe = Pipeline::start();
    let ok = http(Behaviour::Ok).await;
    let bad = http(Behaviour::Status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &two_targets(&ok.url("http", "/"), &bad.url("http", "/")),
    );
    let endpoint = if protocol == "grpc" {
        pipe.grpc.clone()
    } else {
        pipe.http.clone()
    };
    let mut cmd = tokio::process::Command::new(KPATROL);
    cmd.args(["run", "-o", "json"]).arg(&f);
    otel_env(&mut cmd, &endpoint, protocol);
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = pipe.wait_for("3+ spans and the request counter", |r| {
        spans(r).len() >= 4 && points(r).iter().any(|(n, _)| n == "kpatrol.requests")
    });

    // spans: round → agent → target ×2, one trace
    let s = spans(&got);
    let by = |name: &str| -> Vec<&(Value, Value)> { s.iter().filter(|(_, sp)| sp["name"] == name).collect() };
    let (round, agent, targets) = (by("round"), by("agent"), by("target"));
    assert_eq!((round.len(), agent.len(), targets.len()), (1, 1, 2), "{s:#?}");
    let (res, round) = round[0];
    assert!(
        round.get("parentSpanId").is_none_or(|p| p == ""),
        "the round span is the root"
    );
    assert_eq!(agent[0].1["parentSpanId"], round["spanId"]);
    for (_, t) in &targets {
        assert_eq!(t["parentSpanId"], agent[0].1["spanId"]);
        assert_eq!(t["traceId"], round["traceId"]);
    }
    assert_eq!(attr(&round["attributes"], "kpatrol.task").unwrap(), "web");
    assert_eq!(attr(&round["attributes"], "kpatrol.kind").unwrap(), "HttpCheck");
    assert_eq!(attr(&round["attributes"], "kpatrol.verdict").unwrap(), "fail");
    assert_eq!(round["status"]["code"], "STATUS_CODE_ERROR");
    assert!(
        round["status"]["message"]
            .as_str()
            .unwrap()
            .contains("bad success rate"),
        "{}",
        round["status"]
    );
    assert_eq!(attr(&res["attributes"], "service.name").unwrap(), "kpatrol");
    assert_eq!(attr(&res["attributes"], "k8s.cluster.name").unwrap(), "test-cluster");
    assert_eq!(attr(&res["attributes"], "kpatrol.label.team").unwrap(), "platform");
    let bad_span = targets
        .iter()
        .find(|(_, t)| attr(&t["attributes"], "kpatrol.target").unwrap() == "bad")
        .unwrap();
    assert_eq!(bad_span.1["status"]["code"], "STATUS_CODE_ERROR");
    let ok_span = targets
        .iter()
        .find(|(_, t)| attr(&t["attributes"], "kpatrol.target").unwrap() == "ok")
        .unwrap();
    assert_ne!(ok_span.1["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(
        attr(&ok_span.1["attributes"], "kpatrol.sent").unwrap(),
        report["targets"][0]["sent"].to_string()
    );

    // metrics: the counter matches the report, per target and outcome
    let p = points(&got);
    let count = |target: &str, outcome: &str| -> u64 {
        p.iter()
            .filter(|(n, pt)| {
                n == "kpatrol.requests"
                    && attr(&pt["attributes"], "kpatrol.target").unwrap() == target
                    && attr(&pt["attributes"], "kpatrol.outcome").unwrap() == outcome
            })
            .map(|(_, pt)| pt["asInt"].as_str().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("ok", "success"), report["targets"][0]["sent"].as_u64().unwrap());
    assert_eq!(count("bad", "failure"), report["targets"][1]["sent"].as_u64().unwrap());
    let verdict = p.iter().find(|(n, _)| n == "kpatrol.round.verdict").unwrap();
    assert_eq!(verdict.1["asInt"], "0");
    let hist = p
        .iter()
        .find(|(n, pt)| n == "kpatrol.request.duration" && attr(&pt["attributes"], "kpatrol.target").unwrap() == "ok")
        .unwrap();
    assert_eq!(
        hist.1["count"].as_str().unwrap().parse::<u64>().unwrap(),
        report["targets"][0]["answered"].as_u64().unwrap()
    );
    // the failing check leads to the trace
    let failing = p
        .iter()
        .find(|(n, pt)| n == "kpatrol.check" && pt["asInt"] == "0")
        .unwrap();
    let trace_hex = attr(&failing.1["attributes"], "kpatrol.trace_id").unwrap();
    let trace_b64 = round["traceId"].as_str().unwrap();
    assert_eq!(hex_of_b64(trace_b64), trace_hex.as_str().unwrap());
}

/// MessageToDict renders ids in base64.
fn hex_of_b64(b64: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        bits = bits << 6 | T.iter().position(|t| *t == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out += &format!("{:02x}", (bits >> n) & 0xff);
        }
    }
    out
}

#[tokio::test]
async fn a_round_over_grpc_arrives_as_one_trace_and_metrics() {
    round_and_check("grpc").await;
}

#[tokio::test]
async fn a_round_over_http_protobuf_arrives_as_one_trace_and_metrics() {
    round_and_check("http/protobuf").await;
}

#[tokio::test]
async fn agents_of_one_round_share_one_trace() {
    let pipe = Pipeline::start();
    let ok = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web}}\nspec:\n  pressure: {{qps: 10, duration: 200ms}}\n  targets: [{{url: \"{}\"}}]\n",
            ok.url("http", "/")
        ),
    );
    for index in ["0", "1", "2"] {
        let mut cmd = tokio::process::Command::new(PROBE);
        cmd.args(["http", "--task"])
            .arg(&f)
            .arg("--termination-log")
            .arg(dir.path().join(format!("log{index}")));
        otel_env(&mut cmd, &pipe.grpc, "grpc");
        cmd.env("KPATROL_JOB_NAME", "web-29000")
            .env("KPATROL_NAMESPACE", "kpatrol")
            .env("KPATROL_AGENT_INDEX", index);
        let out = cmd.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("telemetry not sent"), "agent {index}: {stderr}");
    }
    let got = pipe.wait_for("3 agent spans", |r| {
        spans(r).iter().filter(|(_, s)| s["name"] == "agent").count() == 3
    });
    let s = spans(&got);
    let rounds: Vec<_> = s.iter().filter(|(_, sp)| sp["name"] == "round").collect();
    assert_eq!(rounds.len(), 1, "agent 0 emits the round span");
    let trace = &rounds[0].1["traceId"];
    for (_, sp) in &s {
        assert_eq!(&sp["traceId"], trace, "one trace across agents");
    }
    let agents: Vec<_> = s.iter().filter(|(_, sp)| sp["name"] == "agent").collect();
    assert!(agents.iter().all(|(_, a)| a["parentSpanId"] == rounds[0].1["spanId"]));
    let mut indexes: Vec<String> = agents
        .iter()
        .map(|(_, a)| {
            attr(&a["attributes"], "kpatrol.agent.index")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    let round_id = attr(&rounds[0].1["attributes"], "kpatrol.round.id").unwrap();
    assert_eq!(round_id, "web-29000");
}

#[tokio::test]
async fn a_collector_that_is_down_changes_no_verdict_and_costs_at_most_the_flush() {
    let ok = http(Behaviour::Ok).await;
    let bad = http(Behaviour::Status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &two_targets(&ok.url("http", "/"), &bad.url("http", "/")),
    );
    // a port that accepts nothing, and one that accepts connections but never answers
    let closed = closed_port().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    for (endpoint, protocol) in [
        (format!("http://{closed}"), "grpc"),
        (format!("http://{silent_addr}"), "grpc"),
        (format!("http://{silent_addr}"), "http/protobuf"),
    ] {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(KPATROL);
        cmd.args(["run", "-o", "json"])
            .arg(&f)
            .env("KPATROL_TELEMETRY_FLUSH", "1s");
        otel_env(&mut cmd, &endpoint, protocol);
        let out = cmd.output().await.unwrap();
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "the verdict stands");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["verdict"], "fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("telemetry not sent").count(), 1, "logged once: {err}");
        assert!(
            took < Duration::from_millis(500 + 1000 + 1500),
            "{endpoint} {protocol}: took {took:?}"
        );
    }
    drop(silent);
}

#[tokio::test]
async fn malformed_settings_warn_and_the_round_still_runs() {
    let ok = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web}}\nspec:\n  pressure: {{qps: 10, duration: 200ms}}\n  targets: [{{url: \"{}\"}}]\n",
            ok.url("http", "/")
        ),
    );
    for (k, v) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "oops"),
    ] {
        let mut cmd = tokio::process::Command::new(KPATROL);
        cmd.arg("run")
            .arg(&f)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .env(k, v);
        let out = cmd.output().await.unwrap();
        assert_eq!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("warning: telemetry off:"), "{err}");
    }
}

#[tokio::test]
async fn a_launchers_round_span_parents_its_agents_through_traceparent() {
    let pipe = Pipeline::start();
    let ok = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web}}\nspec:\n  pressure: {{qps: 10, duration: 200ms}}\n  targets: [{{url: \"{}\"}}]\n",
            ok.url("http", "/")
        ),
    );
    let ids = kpatrol::telemetry::trace_ids(None, "kpatrol", Some("web-launcher-1"), 0);
    let tp = kpatrol::telemetry::traceparent(&ids);
    for index in ["0", "1"] {
        let mut cmd = tokio::process::Command::new(PROBE);
        cmd.args(["http", "--task"])
            .arg(&f)
            .arg("--termination-log")
            .arg(dir.path().join("log"));
        otel_env(&mut cmd, &pipe.grpc, "grpc");
        cmd.env("TRACEPARENT", &tp)
            .env("KPATROL_JOB_NAME", "web-launcher-1-agents")
            .env("KPATROL_NAMESPACE", "kpatrol")
            .env("KPATROL_AGENT_INDEX", index);
        assert_eq!(cmd.output().await.unwrap().status.code(), Some(0));
    }
    let plan = kpatrol::plan::load_file(&f).unwrap().plans.remove(0);
    let cfg = kpatrol::telemetry::config_from(|k| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(pipe.grpc.clone()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let now = std::time::SystemTime::now();
    let span = kpatrol::telemetry::launcher_span(
        &ids,
        &plan,
        "web-launcher-1",
        false,
        Some("1 agent(s) missing".into()),
        now - Duration::from_secs(1),
        now,
    );
    kpatrol::telemetry::export_launcher_span(&cfg, &plan, span)
        .await
        .unwrap();
    let got = pipe.wait_for("the round span and 2 agents", |r| {
        let s = spans(r);
        s.iter().filter(|(_, x)| x["name"] == "agent").count() == 2 && s.iter().any(|(_, x)| x["name"] == "round")
    });
    let s = spans(&got);
    let rounds: Vec<_> = s.iter().filter(|(_, x)| x["name"] == "round").collect();
    assert_eq!(rounds.len(), 1, "only the launcher emits the round span");
    let round = &rounds[0].1;
    assert_eq!(round["status"]["message"], "1 agent(s) missing");
    for (_, a) in s.iter().filter(|(_, x)| x["name"] == "agent") {
        assert_eq!(a["parentSpanId"], round["spanId"]);
        assert_eq!(a["traceId"], round["traceId"]);
    }
}

fn one_target(url: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: web}}\nspec:\n  pressure: {{qps: 10, duration: 200ms}}\n  targets: [{{url: \"{url}\"}}]\n"
    )
}

/// What a `kpatrol-probe http` run printed: exit code, stdout, stderr, termination message.
async fn probe_run(task: &std::path::Path, env: &[(&str, String)]) -> (Option<i32>, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let mut cmd = tokio::process::Command::new(PROBE);
    cmd.args(["http", "--task"])
        .arg(task)
        .arg("--termination-log")
        .arg(&log)
        .env("KPATROL_TELEMETRY_FLUSH", "2s")
        .env_remove("KPATROL_JOB_NAME")
        .env_remove("TRACEPARENT");
    for k in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "KPATROL_RESOURCE_ATTRIBUTES",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_malformed_percent_sequence_in_a_setting_does_not_crash_the_probe() {
    let ok = http(Behaviour::Ok).await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", &one_target(&ok.url("http", "/")));
    for var in [
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "KPATROL_RESOURCE_ATTRIBUTES",
    ] {
        let (code, _, err, log) = probe_run(
            &f,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}")),
                (var, "k=%1ü".into()),
            ],
        )
        .await;
        assert_eq!(code, Some(0), "{var}: {err}");
        assert!(!err.contains("panic"), "{var}: {err}");
        let msg: Value =
            serde_json::from_str(&log).unwrap_or_else(|e| panic!("{var}: termination message {e}: {log:?}"));
        assert_eq!(msg["verdict"], "pass", "{var}: {log}");
        // the setting was read: telemetry was attempted or turned off with a warning
        assert!(err.contains("telemetry"), "{var}: {err}");
    }
}

#[tokio::test]
async fn credentials_in_telemetry_settings_appear_in_no_output() {
    let ok = http(Behaviour::Ok).await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", &one_target(&ok.url("http", "/")));
    let down = format!("http://{closed}");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "S3cr3tT0ken1",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", down.clone()),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization: Bearer S3cr3tT0ken1".into(),
                ),
            ],
        ),
        (
            "S3cr3tT0ken2",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", down.clone()),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization Bearer S3cr3tT0ken2=x".into(),
                ),
            ],
        ),
        (
            "S3cr3tPass3",
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://kp:S3cr3tPass3@{closed}"))],
        ),
        (
            "S3cr3tPass4",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://kp:S3cr3tPass4@{closed}")),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ],
        ),
        (
            "S3cr3tPass5",
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://kp:S3cr3tPass5@".into())],
        ),
        (
            "S3cr3tT0ken6",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", down.clone()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20S3cr3tT0ken6".into(),
                ),
            ],
        ),
    ];
    for (secret, env) in cases {
        let (code, out, err, log) = probe_run(&f, &env).await;
        assert_eq!(code, Some(0), "{secret}: {err}");
        assert!(err.contains("telemetry"), "{secret}: nothing reported: {err}");
        for (what, text) in [("stdout", &out), ("stderr", &err), ("termination log", &log)] {
            assert!(!text.contains(secret), "{secret} in {what}: {text}");
            // nor the start of it
            assert!(!text.contains(&secret[..6]), "part of {secret} in {what}: {text}");
        }
        assert!(!err.contains("kp:"), "{secret}: userinfo in {err}");
    }
}

#[tokio::test]
async fn the_per_export_timeout_holds_over_both_protocols() {
    let ok = http(Behaviour::Ok).await;
    let bad = http(Behaviour::Status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &two_targets(&ok.url("http", "/"), &bad.url("http", "/")),
    );
    // accepts connections (the kernel's backlog), never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    for protocol in ["http/protobuf", "grpc"] {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(KPATROL);
        cmd.args(["run", "-o", "json"])
            .arg(&f)
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
            .env("KPATROL_TELEMETRY_FLUSH", "20s");
        otel_env(&mut cmd, &endpoint, protocol);
        let out = cmd.output().await.unwrap();
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{protocol}: the verdict stands");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["verdict"], "fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("telemetry not sent").count(), 1, "{protocol}: {err}");
        // a 500 ms round, two exports side by side bounded at 300 ms, and process start-up
        assert!(took < Duration::from_secs(3), "{protocol}: took {took:?}: {err}");
    }
    drop(silent);
}

#[tokio::test]
async fn a_mesh_round_arrives_as_one_trace_with_a_span_per_node_and_the_cells_as_metrics() {
    let pipe = Pipeline::start();
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: mesh}\nspec:\n  expect: {meanAccessDelayInMs: 1500, successRate: 1}\n  request: {durationInSecond: 1, perRequestTimeoutInMS: 1000, qps: 5}\n  schedule: {roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}\n  target: {endpoint: true, clusterIP: false, nodePort: false, ipv4: true, ipv6: false}\n",
    );
    let mut cmd = tokio::process::Command::new(KPATROL);
    cmd.args(["run", "-o", "json", "--agents", "3", "--impair", "1=down"])
        .arg(&f);
    otel_env(&mut cmd, &pipe.grpc, "grpc");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = pipe.wait_for("4 spans and the failed-cells gauge", |r| {
        spans(r).len() >= 4 && points(r).iter().any(|(n, _)| n == "kpatrol.mesh.failed_cells")
    });

    // one trace: the round, then one span per node
    let s = spans(&got);
    let round: Vec<_> = s.iter().filter(|(_, sp)| sp["name"] == "round").collect();
    let agents: Vec<_> = s.iter().filter(|(_, sp)| sp["name"] == "agent").collect();
    assert_eq!((round.len(), agents.len()), (1, 3), "{s:#?}");
    let round = &round[0].1;
    assert_eq!(attr(&round["attributes"], "kpatrol.mode").unwrap(), "reach");
    assert_eq!(attr(&round["attributes"], "kpatrol.verdict").unwrap(), "fail");
    assert_eq!(
        attr(&round["attributes"], "kpatrol.failed_cells").unwrap(),
        report["failedCells"].to_string()
    );
    assert!(
        round["status"]["message"]
            .as_str()
            .unwrap()
            .contains("node agent-1: its agent never reported"),
        "{}",
        round["status"]
    );
    for (_, a) in &agents {
        assert_eq!(a["parentSpanId"], round["spanId"]);
        assert_eq!(a["traceId"], round["traceId"]);
        let node = attr(&a["attributes"], "kpatrol.node").unwrap();
        let failing = a["status"]["code"] == "STATUS_CODE_ERROR";
        // agent-1 never reported; the others each have one failing cell, to agent-1
        assert!(failing, "{node}: {a:#}");
        if node == "agent-1" {
            assert_eq!(attr(&a["attributes"], "kpatrol.reported").unwrap(), false);
        } else {
            assert!(
                a["status"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{} → agent-1 pod ipv4: 0/5 ok", node.as_str().unwrap())),
                "{}",
                a["status"]
            );
        }
    }

    // metrics: each cell's ratio, each node's failing row and column, the verdict
    let p = points(&got);
    let ratio = |from: &str, to: &str| -> f64 {
        p.iter()
            .find(|(n, pt)| {
                n == "kpatrol.mesh.cell.success.ratio"
                    && attr(&pt["attributes"], "kpatrol.source.node").unwrap() == from
                    && attr(&pt["attributes"], "kpatrol.target.node").unwrap() == to
            })
            .map(|(_, pt)| pt["asDouble"].as_f64().unwrap())
            .unwrap_or_else(|| panic!("no cell {from} → {to}"))
    };
    assert_eq!(ratio("agent-0", "agent-1"), 0.0);
    assert_eq!(ratio("agent-2", "agent-1"), 0.0);
    assert_eq!(ratio("agent-0", "agent-2"), 1.0);
    assert_eq!(ratio("agent-2", "agent-0"), 1.0);
    let failed = |node: &str, direction: &str| -> i64 {
        p.iter()
            .find(|(n, pt)| {
                n == "kpatrol.mesh.failed_cells"
                    && attr(&pt["attributes"], "kpatrol.node").unwrap() == node
                    && attr(&pt["attributes"], "kpatrol.direction").unwrap() == direction
            })
            .map(|(_, pt)| pt["asInt"].as_str().unwrap().parse().unwrap())
            .unwrap_or_else(|| panic!("no failed_cells for {node} {direction}"))
    };
    assert_eq!(failed("agent-1", "to"), 2);
    assert_eq!(failed("agent-1", "from"), 0, "its row is unknown, not failing");
    assert_eq!(failed("agent-0", "from"), 1);
    assert_eq!(failed("agent-0", "to"), 0);
    let latency = p
        .iter()
        .filter(|(n, pt)| {
            n == "kpatrol.mesh.cell.latency" && attr(&pt["attributes"], "kpatrol.quantile").unwrap() == "p99"
        })
        .count();
    assert_eq!(
        latency, 4,
        "the answered cells: agent-0 and agent-2 to themselves and each other"
    );
    let verdict = p.iter().find(|(n, _)| n == "kpatrol.round.verdict").unwrap();
    assert_eq!(verdict.1["asInt"], "0");
}
