//! The mesh on one machine: `kpatrol run` of kdoctor's NetReach runs its agents on loopback
//! (127.0.0.x and ::1), each serving and pressing every agent over the pod path; the matrix
//! passes when every cell does; an agent rehearsed as down (`--impair AGENT=down`) is named
//! by the diagnosis, its column failing, its row missing, every other cell passing; paths a
//! loopback cannot take are listed as skipped, not failed; bad flags and a mesh with nothing
//! to press on loopback exit 2 with the reason.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::process::Command;

use support::task_file;

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");

fn netreach(target: &str) -> String {
    format!(
        "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {{name: mesh}}\nspec:\n  expect: {{meanAccessDelayInMs: 1500, successRate: 1}}\n  request: {{durationInSecond: 1, perRequestTimeoutInMS: 2000, qps: 10}}\n  schedule: {{roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}}\n  target: {target}\n"
    )
}

const ALL_PATHS: &str = "{endpoint: true, clusterIP: true, nodePort: true, loadBalancer: false, ingress: false, multusInterface: false, ipv4: true, ipv6: true}";

fn run(task: &str, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", task);
    let out = Command::new(KPATROL).arg("run").args(args).arg(&f).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_loopback_mesh_of_four_agents_passes_over_ipv4_and_ipv6() {
    let (code, r, err) = run(&netreach(ALL_PATHS), &["-o", "json"]);
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["agents"], 4);
    assert_eq!(r["cells"], 4 * 4 * 2, "every agent to every agent, two families");
    assert_eq!(r["failedCells"], 0);
    assert_eq!(
        r["skipped"],
        serde_json::json!(["clusterIP: needs a cluster", "nodePort: needs a cluster"])
    );
    assert_eq!(r["findings"], serde_json::json!([]));
}

#[test]
fn an_agent_down_is_named_and_only_its_cells_fail() {
    let (code, r, err) = run(
        &netreach(ALL_PATHS),
        &["-o", "json", "--agents", "5", "--impair", "3=down"],
    );
    assert_eq!(code, Some(1), "{r:#}\n{err}");
    assert_eq!(r["verdict"], "fail");
    // its column over both families; its own row is missing
    assert_eq!(r["cells"], 4 * 5 * 2);
    assert_eq!(r["failedCells"], 4 * 2);
    assert_eq!(
        r["findings"],
        serde_json::json!([
            "node agent-3: every cell to it failed (8 cells): the node is the likely cause",
            "node agent-3: its agent never reported"
        ])
    );
    for c in r["checks"].as_array().unwrap() {
        let about_3 = c["target"] == "agent-3" || c["agent"] == "agent-3";
        assert!(about_3 && c["pass"] == false, "{c}");
    }
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["agent"] == "agent-3" && c["observed"] == "no report"),
        "{r:#}"
    );
}

#[test]
fn the_table_draws_the_matrix_and_says_what_was_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", &netreach(ALL_PATHS));
    let out = Command::new(KPATROL)
        .args(["run", "--agents", "3", "--impair", "1=down"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "NetReach mesh on loopback: 3 agents, the pod path (ipv4, ipv6)\n",
        "skipped clusterIP: needs a cluster\n",
        "pod ipv4: source ↓ target →\n",
        "agent-0  ·█·  0\n",
        "agent-1  ???  1\n",
        "node agent-1: its agent never reported\n",
        "verdict: FAIL\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

#[test]
fn bad_flags_and_a_mesh_with_nothing_to_press_on_loopback_exit_2() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            ALL_PATHS,
            &["--impair", "4=down"],
            "--impair 4=down: there are 4 agents, 0 to 3",
        ),
        (
            ALL_PATHS,
            &["--impair", "1=loss:20"],
            "only `down` can be rehearsed on loopback",
        ),
        (ALL_PATHS, &["--impair", "x"], "--impair x: expected AGENT=down"),
        (ALL_PATHS, &["--agents", "1"], "--agents"),
        (ALL_PATHS, &["--agents", "65"], "--agents"),
        (
            "{endpoint: false, clusterIP: true, nodePort: false, loadBalancer: false, ingress: false, multusInterface: false, ipv4: true, ipv6: false}",
            &[],
            "nothing to press on loopback: a local mesh takes the pod path (endpoint) over IPv4 or IPv6",
        ),
    ];
    for (target, args, want) in cases {
        let (code, _, err) = run(&netreach(target), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {want} in {err}");
    }
    // --agents is a mesh's
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "h.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: h}\nspec:\n  targets: [{url: \"http://127.0.0.1:9/\"}]\n",
    );
    let out = Command::new(KPATROL)
        .args(["run", "--agents", "3"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--agents and --impair are for a mesh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
