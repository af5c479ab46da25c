//! The binaries as users and pods run them: `kpatrol run` (table, JSON, exit codes,
//! Ctrl-C), `kpatrol-probe http` (JSON on stdout, the bounded termination message,
//! exit codes), `kpatrol serve`.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

use support::*;

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");
const PROBE: &str = env!("CARGO_BIN_EXE_kpatrol-probe");

fn task(url: &str, pressure: &str, expect: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: cli}}\nspec:\n  pressure: {pressure}\n  expect: {expect}\n  targets:\n    - url: \"{url}\"\n"
    )
}

#[tokio::test]
async fn probe_writes_the_report_and_a_bounded_termination_message() {
    let s = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(&s.url("http", "/"), "{qps: 20, duration: 500ms}", "{successRate: 1}"),
    );
    let log = dir.path().join("termination-log");
    let out = probe_round("http", &f, &log).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["targets"][0]["sent"], 10);
    let msg = std::fs::read_to_string(&log).unwrap();
    assert!(msg.len() <= 4096);
    // one report for both: what fits the message is the report as printed
    let brief: serde_json::Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(brief, report);

    // a failing round: exit 1, failing checks in the message
    let bad = http(Behaviour::Status(500)).await;
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(&bad.url("http", "/"), "{qps: 20, duration: 500ms}", "{successRate: 1}"),
    );
    let out = probe_round("http", &f, &log).await;
    assert_eq!(out.status.code(), Some(1));
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "fail");
    let failed: Vec<&serde_json::Value> = brief["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .collect();
    assert_eq!(failed[0]["check"], "success rate", "{brief}");
}

#[test]
fn termination_message_stays_under_4_kib_with_many_targets() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: many}\nspec:\n  pressure: {qps: 1, duration: 1s, timeout: 100ms}\n  targets:\n",
    );
    for i in 0..60 {
        yaml += &format!("    - {{name: target-with-a-rather-long-name-{i:03}, url: \"http://127.0.0.1:9/{i}\"}}\n");
    }
    let f = task_file(dir.path(), "t.yaml", &yaml);
    let log = dir.path().join("log");
    let out = Command::new(PROBE)
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = std::fs::read_to_string(&log).unwrap();
    assert!(msg.len() <= 4096, "{} bytes", msg.len());
    let brief: serde_json::Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(brief["verdict"], "fail");
    assert_eq!(brief["truncated"], true);
}

#[test]
fn probe_exit_2_when_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // a missing task file
    let out = Command::new(PROBE)
        .args(["http", "--task", "/nonexistent/task.yaml", "--termination-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "error");
    // an invalid task
    let f = task_file(dir.path(), "t.yaml", &task("ftp://x", "{qps: 1}", "{}"));
    let out = Command::new(PROBE)
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.targets[0].url"));
    // a task of another mode
    let f = task_file(
        dir.path(),
        "t.yaml",
        "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: r}\nspec:\n  schedule: {schedule: 0 1, roundTimeoutMinute: 1}\n  request: {qps: 10, durationInSecond: 1, perRequestTimeoutInMS: 100}\n",
    );
    let out = Command::new(PROBE)
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mode `reach`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn run_prints_the_table_or_json_and_exits_by_verdict() {
    let s = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(
            &s.url("http", "/"),
            "{qps: 20, duration: 500ms}",
            "{successRate: 1, latency: {p99: 1s}}",
        ),
    );
    let out = tokio::process::Command::new(KPATROL)
        .arg("run")
        .arg(&f)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "TARGET",
        "CHECK",
        "OBSERVED",
        "THRESHOLD",
        "success rate",
        "100% (10/10)",
        "latency p99",
        "≤ 1s",
        "verdict: PASS",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let out = tokio::process::Command::new(KPATROL)
        .args(["run", "-o", "json"])
        .arg(&f)
        .output()
        .await
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "schemaVersion",
        "task",
        "namespace",
        "kind",
        "mode",
        "verdict",
        "stopped",
        "started",
        "durationSeconds",
        "targets",
        "checks",
    ] {
        assert!(r.get(key).is_some(), "{key} missing in {r}");
    }
    let t = &r["targets"][0];
    for key in [
        "name",
        "planned",
        "sent",
        "unsent",
        "answered",
        "failed",
        "succeeded",
        "successRate",
        "rate",
        "codes",
        "errors",
        "latencyMs",
    ] {
        assert!(t.get(key).is_some(), "{key} missing in {t}");
    }
    for key in ["min", "mean", "p50", "p90", "p95", "p99", "max"] {
        assert!(t["latencyMs"][key].is_number(), "{key}");
    }
    let c = &r["checks"][0];
    assert_eq!(c["check"], "success rate");
    assert_eq!(c["pass"], true);

    // overrides from the command line, and a failing verdict
    let out = tokio::process::Command::new(KPATROL)
        .args(["run", "-o", "json", "--qps", "40", "--duration", "250ms"])
        .arg(&f)
        .output()
        .await
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["targets"][0]["sent"], 10);
    let bad = http(Behaviour::Status(503)).await;
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(&bad.url("http", "/"), "{qps: 20, duration: 200ms}", "{successRate: 1}"),
    );
    let out = tokio::process::Command::new(KPATROL)
        .arg("run")
        .arg(&f)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: FAIL"));
}

#[test]
fn run_picks_a_task_by_name_and_refuses_ambiguity() {
    let dir = tempfile::tempdir().unwrap();
    let one = task("http://127.0.0.1:9/", "{qps: 1, duration: 1s}", "{}");
    let f = task_file(
        dir.path(),
        "t.yaml",
        &format!("{one}---\n{}", one.replace("name: cli", "name: other")),
    );
    let out = Command::new(KPATROL).arg("run").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--name") && err.contains("cli") && err.contains("other"),
        "{err}"
    );
    let out = Command::new(KPATROL)
        .args(["run", "--name", "nope"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task named `nope`"));
}

#[tokio::test]
async fn ctrl_c_stops_the_round_and_still_reports() {
    let s = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(&s.url("http", "/"), "{qps: 50, duration: 60s}", "{successRate: 1}"),
    );
    // the test's server runs on this test's runtime: the child is awaited, never waited for
    // in a blocking call, so the server still answers what is in flight at the interrupt
    let child = tokio::process::Command::new(KPATROL)
        .args(["run", "-o", "json"])
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the server has seen traffic, then interrupt
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.seen.requests.load(Ordering::SeqCst) < 5 {
        assert!(std::time::Instant::now() < deadline, "no traffic");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    kill("-INT", &child);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(r["stopped"], true);
    // a stopped round did not do what was asked: it fails, and says so
    assert_eq!(r["verdict"], "fail");
    assert_eq!(out.status.code(), Some(1));
    let completed = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "completed")
        .expect("a completed check");
    assert_eq!(completed["pass"], false);
    let sent = r["targets"][0]["sent"].as_u64().unwrap();
    assert!((5..3000).contains(&sent), "sent {sent}");
    assert_eq!(r["targets"][0]["answered"].as_u64().unwrap(), sent);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping"));
}

#[tokio::test]
async fn serve_answers_with_the_asked_status_and_delay() {
    let port = closed_port().await.port();
    let mut child = tokio::process::Command::new(KPATROL)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // wait for the "serving" line
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stderr).read_line(&mut line),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(line.contains("serving on"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: s}}\nspec:\n  pressure: {{qps: 20, duration: 500ms}}\n  targets:\n    - {{name: teapot, url: \"http://127.0.0.1:{port}/?status=418\", expect: {{status: [418]}}}}\n    - {{name: slow, url: \"http://127.0.0.1:{port}/?delay=60ms\", expect: {{latency: {{p50: 1s}}}}}}\n"
        ),
    );
    let out = tokio::process::Command::new(KPATROL)
        .args(["run", "-o", "json"])
        .arg(&f)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["targets"][0]["codes"]["418"], 10);
    assert!(r["targets"][1]["latencyMs"]["p50"].as_f64().unwrap() >= 60.0);
    child.kill().await.unwrap();
}

#[test]
fn validate_reads_each_file_once_and_survives_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "a.yaml", &task("http://127.0.0.1:9/", "{qps: 1}", "{}"));
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let out = Command::new(KPATROL)
        .arg("validate")
        .arg(dir.path())
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("1 file(s), 1 valid task(s), 0 error(s)"), "{text}");
}

#[test]
fn validate_reads_passthrough_objects_as_render_does() {
    let dir = tempfile::tempdir().unwrap();
    let good = task("http://127.0.0.1:9/", "{qps: 1}", "{}");
    let bad = good.replace("spec:\n", "spec:\n  agents: {resources: {limits: 5}}\n");
    assert_ne!(good, bad);
    let f = task_file(dir.path(), "a.yaml", &bad);
    let out = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("spec.agents.resources.limits: invalid type: integer `5`, expected a map"),
        "{text}"
    );
    assert!(text.contains("1 file(s), 0 valid task(s), 1 error(s)"), "{text}");
}

#[tokio::test]
async fn reports_say_why_attempts_failed_and_have_no_latency_without_answers() {
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(
            &format!("http://{closed}/"),
            "{qps: 10, duration: 200ms}",
            "{successRate: 1}",
        ),
    );
    let out = tokio::process::Command::new(KPATROL)
        .args(["run", "-o", "json"])
        .arg(&f)
        .output()
        .await
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &r["targets"][0];
    assert!(t["latencyMs"].is_null(), "{t}");
    let sample = t["errorSamples"]["refused"].as_str().unwrap();
    assert!(
        sample.contains("onnection refused") && sample.contains(&closed.to_string()),
        "{sample}"
    );
    let out = tokio::process::Command::new(KPATROL)
        .arg("run")
        .arg(&f)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no answers") && text.contains("refused: connect to"),
        "{text}"
    );
}

#[test]
fn a_panic_still_writes_the_termination_message_and_exits_2() {
    // Debug builds panic on purpose with KPATROL_TEST_PANIC (no input makes them panic).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let f = task_file(dir.path(), "t.yaml", &task("http://127.0.0.1:9/", "{qps: 1}", "{}"));
    let out = Command::new(PROBE)
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .env("KPATROL_TEST_PANIC", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "error");
    let error = brief["error"].as_str().unwrap();
    assert!(error.starts_with("internal error at src/cli/mod.rs:"), "{error}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("a bug"));
}

/// A child whose stdout is a pipe nobody reads: the read end is closed at once.
fn with_closed_stdout(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_closed_stdout_does_not_change_the_verdict() {
    let s = http(Behaviour::Status(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(&s.url("http", "/"), "{qps: 20, duration: 200ms}", "{successRate: 1}"),
    );
    let f2 = f.clone();
    let run = tokio::task::spawn_blocking(move || {
        with_closed_stdout(Command::new(KPATROL).args(["run", "-o", "json"]).arg(&f2))
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let log = dir.path().join("log");
    let log2 = log.clone();
    let probe = tokio::task::spawn_blocking(move || {
        with_closed_stdout(
            Command::new(PROBE)
                .args(["http", "--task"])
                .arg(&f)
                .arg("--termination-log")
                .arg(&log2),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        probe.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "fail");
}

/// A probe pressing a target whose answers take 30 s, with a 60 s timeout, once the target
/// has seen its first requests: only a signal ends it soon. Returns the target (keep it),
/// the folder, the termination log and the child (stdout and stderr piped).
async fn probe_on_a_stalled_target(
    env: &[(&str, &str)],
) -> (Server, tempfile::TempDir, std::path::PathBuf, tokio::process::Child) {
    let s = http(Behaviour::Delay(Duration::from_secs(30))).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(
            &s.url("http", "/"),
            "{qps: 20, duration: 60s, timeout: 60s}",
            "{successRate: 1}",
        ),
    );
    let child = tokio::process::Command::new(PROBE)
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.seen.requests.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "no traffic");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (s, dir, log, child)
}

fn kill(signal: &str, child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

#[tokio::test]
async fn a_second_signal_quits_at_once_and_the_probe_still_says_so() {
    let (_s, _dir, log, mut child) = probe_on_a_stalled_target(&[]).await;
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    kill("-INT", &child);
    // the second signal once the first one was taken
    while let Some(line) = stderr.next_line().await.unwrap() {
        if line.starts_with("stopping") {
            break;
        }
    }
    let started = std::time::Instant::now();
    kill("-INT", &child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(2));
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "error");
    assert!(brief["error"].as_str().unwrap().contains("second signal"), "{brief}");
}

#[tokio::test]
async fn sigterm_drains_within_the_drain_and_still_reports() {
    // the drain is 300 ms: the stalled answers are cut long before their timeout
    let (_s, _dir, log, child) = probe_on_a_stalled_target(&[("KPATROL_DRAIN", "300ms")]).await;
    let started = std::time::Instant::now();
    kill("-TERM", &child);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["stopped"], true);
    let t = &r["targets"][0];
    assert!(t["sent"].as_u64().unwrap() >= 2, "{t}");
    assert_eq!(t["answered"], 0, "{t}");
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "fail");
}

#[test]
fn probe_help_says_what_each_mode_does() {
    let out = Command::new(PROBE).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for mode in kpatrol::modes::probe_modes() {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", mode.name)))
            .unwrap_or_else(|| panic!("no line for {} in\n{help}", mode.name));
        assert!(line.ends_with(mode.about), "{line:?} should end with {:?}", mode.about);
    }
    assert!(help.contains("reach  One agent of a mesh round"), "{help}");
    let sql = Command::new(PROBE).args(["sql", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&sql.stdout).starts_with("PostgreSQL and MySQL/MariaDB"));
}
