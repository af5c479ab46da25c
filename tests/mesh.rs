//! The mesh on one machine: `kpatrol run` of kdoctor's NetReach runs its agents on loopback
//! (127.0.0.x and ::1), each serving and pressing every agent over the pod path; the matrix
//! passes when every cell does; an agent rehearsed as down (`--impair AGENT=down`) is named
//! by the diagnosis, its column failing, its row missing, every other cell passing; paths a
//! loopback cannot take are listed as skipped, not failed; bad flags and a mesh with nothing
//! to press on loopback exit 2 with the reason.
//!
//! With `--netns` (root, `ip` and `nft`, as CI runs): each agent a node in a network
//! namespace the run makes, every path real (pod, ClusterIP and NodePort through nftables
//! DNAT, Multus on a second interface), IPv4 and IPv6: all pass; a node at 20% packet loss
//! is named, every cell touching it failing and every other passing; a NodePort rule left
//! out on one node is named as that path; IPv6 on a node without it is skipped, not failed;
//! an agent that never starts is named as not reporting and the round still ends; the
//! namespaces are gone after every run, and those a SIGKILLed run left are deleted by the
//! next.

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
        serde_json::json!([
            "clusterIP: needs --netns or a cluster",
            "nodePort: needs --netns or a cluster"
        ])
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
        "NetReach mesh on loopback: 3 agents, paths pod (ipv4, ipv6)\n",
        "skipped clusterIP: needs --netns or a cluster\n",
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
        String::from_utf8_lossy(&out.stderr).contains("--agents, --netns and --impair are for a mesh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- --netns: each agent a node in a network namespace the test's `kpatrol run` makes ---

/// Every path a netns mesh takes (load balancers and Ingress need a cluster).
const NETNS_PATHS: &str = "{endpoint: true, clusterIP: true, nodePort: true, loadBalancer: true, ingress: false, multusInterface: true, ipv4: true, ipv6: true}";

/// The paths whose cells point at one node: no ClusterIP, whose one address spreads every
/// node's requests over every agent (a lossy agent behind it fails some of everyone's).
const NODE_PATHS: &str = "{endpoint: true, clusterIP: false, nodePort: true, loadBalancer: false, ingress: false, multusInterface: true, ipv4: true, ipv6: true}";

/// A native Mesh over the paths that point at one node (IPv4: the test stays light on a
/// loaded machine), each request on a fresh connection that must answer within 900 ms: a
/// lost SYN or SYN-ACK is retried only after TCP's initial retransmission timeout (1 s), so at
/// 20% loss about a third of the requests touching the node fail, while a healthy request
/// has 900 ms.
const STRICT: &str = "apiVersion: kpatrol.dev/v1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  pressure: {qps: 10, duration: 2s, timeout: 900ms, connections: fresh}\n  expect: {successRate: 1}\n  targets: {paths: [pod, nodePort, multus], families: [ipv4]}\n";

/// The network namespaces of the `kpatrol run` whose process id is `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let lead = format!("kpatrol-{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&lead))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `kpatrol run --netns ARGS` on `task`; asserts its namespaces are gone after it.
fn run_netns(task: &str, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", task);
    let child = Command::new(KPATROL)
        .args(["run", "--netns", "-o", "json"])
        .args(args)
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "every namespace deleted");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether check `c` is about node `node` (its source or its target).
fn touches(c: &serde_json::Value, node: &str) -> bool {
    c["source"] == node || c["target"] == node || c["agent"] == node
}

#[test]
fn a_netns_mesh_passes_over_every_path_and_family_and_leaves_nothing() {
    let (code, r, err) = run_netns(&netreach(NETNS_PATHS), &[]);
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(r["network"], "netns");
    // pod, nodePort and multus: 4 × 4 each; clusterIP: each node's row towards the Service
    assert_eq!(r["cells"], (16 + 4 + 16 + 16) * 2, "{r:#}");
    assert_eq!(r["failedCells"], 0);
    assert_eq!(r["skipped"], serde_json::json!(["loadBalancer: needs a cluster"]));
}

#[test]
fn a_node_at_twenty_percent_loss_is_named_and_only_its_cells_fail() {
    let (code, r, err) = run_netns(STRICT, &["--impair", "2=loss:20"]);
    assert_eq!(code, Some(1), "{r:#}\n{err}");
    // pod, nodePort, multus: its row (4 × 3) and column (4 × 3), the cell to itself counted
    // once per path
    assert_eq!(r["cells"], 48);
    assert_eq!(r["failedCells"], 12 + 12 - 3, "{r:#}");
    assert_eq!(
        r["findings"],
        serde_json::json!(["node agent-2: every cell from and to it failed (21 cells): the node is the likely cause"])
    );
    for c in r["checks"].as_array().unwrap() {
        assert!(touches(c, "agent-2") && c["pass"] == false, "{c}");
    }
}

#[test]
fn one_path_broken_on_one_node_is_named_as_that_path() {
    let (code, r, err) = run_netns(&netreach(NODE_PATHS), &["--impair", "1=nodePort:down", "--agents", "3"]);
    assert_eq!(code, Some(1), "{r:#}\n{err}");
    // its NodePort, over both families: the 3 cells to it each
    assert_eq!(r["failedCells"], 6, "{r:#}");
    assert_eq!(
        r["findings"],
        serde_json::json!([
            "node agent-1, path nodePort ipv4: every cell to it over this path failed (3), its other paths passed",
            "node agent-1, path nodePort ipv6: every cell to it over this path failed (3), its other paths passed"
        ])
    );
    for c in r["checks"].as_array().unwrap() {
        assert_eq!(c["target"], "agent-1", "{c}");
        assert_eq!(c["path"], "nodePort", "{c}");
    }
}

#[test]
fn ipv6_where_a_node_has_none_is_skipped_not_failed() {
    let (code, r, err) = run_netns(&netreach(NODE_PATHS), &["--impair", "0=no-ipv6", "--agents", "3"]);
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(
        r["skipped"],
        serde_json::json!(["ipv6 to and from agent-0: it has no IPv6 address"])
    );
    // IPv4: 3 × 3 per path; IPv6: 2 × 2 per path
    assert_eq!(r["cells"], 3 * (9 + 4), "{r:#}");
}

#[test]
fn an_agent_that_never_starts_is_named_and_the_round_ends_by_its_deadline() {
    let started = std::time::Instant::now();
    let (code, r, err) = run_netns(&netreach(NODE_PATHS), &["--impair", "3=down"]);
    assert_eq!(code, Some(1), "{r:#}\n{err}");
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("node agent-3: its agent never reported")),
        "{r:#}"
    );
    // a 1 s round whose requests time out after 2 s: done well within a minute
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn namespaces_a_killed_run_left_are_deleted_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let long = netreach(NODE_PATHS).replace("durationInSecond: 1,", "durationInSecond: 60,");
    let f = task_file(dir.path(), "t.yaml", &long);
    let mut child = Command::new(KPATROL)
        .args(["run", "--netns", "--agents", "2", "-o", "json"])
        .arg(&f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // the last node's namespace exists once the network is made (bounded wait on the file)
    let made = std::path::Path::new("/run/netns").join(format!("kpatrol-{pid}-1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !made.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            made.display()
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!namespaces_of(pid).is_empty(), "SIGKILL leaves them");
    let (code, r, err) = run_netns(&netreach(NODE_PATHS), &["--agents", "2"]);
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "the next run deleted them");
}

// --- the native Mesh kind ---

fn mesh(targets: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: Mesh\nmetadata: {{name: mesh}}\nspec:\n  agents: {{perNode: {{}}}}\n  pressure: {{qps: 10, duration: 1s, timeout: 2s}}\n  expect: {{successRate: 1, latency: {{p99: 1s}}}}\n  targets:\n{targets}"
    )
}

#[test]
fn a_native_mesh_with_a_neighbour_limit_presses_only_this_rounds_neighbours_and_says_so() {
    let (code, r, err) = run(
        &mesh("    paths: [pod]\n    families: [ipv4, ipv6]\n    peers: 2\n"),
        &["-o", "json", "--agents", "5"],
    );
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(r["kind"], "Mesh");
    // each of 5 agents presses 2 peers over 2 families, never itself
    assert_eq!(r["cells"], 5 * 2 * 2, "{r:#}");
    assert_eq!(
        r["coverage"],
        "each agent pressed 2 of its 4 peers (round 0: the 2 after it, 2 further on each round); every pair is covered within 2 rounds"
    );
    // a limit at or above the other agents is the full mesh, itself included
    let (code, r, err) = run(
        &mesh("    paths: [pod]\n    peers: 50\n"),
        &["-o", "json", "--agents", "3"],
    );
    assert_eq!(code, Some(0), "{r:#}\n{err}");
    assert_eq!(r["cells"], 3 * 3);
    assert!(r.get("coverage").is_none(), "{r:#}");
}

#[test]
fn a_neighbour_limit_names_the_node_whose_cells_fail() {
    let (code, r, err) = run(
        &mesh("    paths: [pod]\n    peers: 2\n"),
        &["-o", "json", "--agents", "6", "--impair", "4=down"],
    );
    assert_eq!(code, Some(1), "{r:#}\n{err}");
    // agents 2 and 3 press agent 4 this round; its own row is missing
    assert_eq!(r["failedCells"], 2, "{r:#}");
    for c in r["checks"].as_array().unwrap() {
        assert!(touches(c, "agent-4"), "{c}");
    }
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("node agent-4: its agent never reported")),
        "{r:#}"
    );
}

#[test]
fn bad_meshes_are_refused_naming_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "    paths: []\n",
            ":9:12: spec.targets.paths: no path listed (allowed: pod, clusterIP, nodePort, loadBalancer, ingress, multus)",
        ),
        (
            "    families: [ipv4]\n",
            ":9:5: spec.targets.paths: a mesh needs its paths",
        ),
        (
            "    paths: [pod, nodPort]\n",
            ":9:18: spec.targets.paths[1]: unknown path `nodPort` (did you mean `nodePort`?)",
        ),
        (
            "    paths: [pod, pod]\n",
            ":9:18: spec.targets.paths[1]: pod is listed twice",
        ),
        (
            "    paths: [pod]\n    families: [ipv5]\n",
            ":10:16: spec.targets.families[0]: unknown family `ipv5`",
        ),
        (
            "    paths: [pod]\n    peers: 0\n",
            ":10:12: spec.targets.peers: `0` is not a number of peers",
        ),
        (
            "    paths: [pod, ingress]\n",
            ":9:5: spec.targets.ingress: the ingress path needs an Ingress: its class and host",
        ),
        (
            "    paths: [pod, ingress]\n    ingress: {className: nginx}\n",
            ":10:14: spec.targets.ingress: the Ingress needs `host`",
        ),
        (
            "    paths: [pod, ingress]\n    ingress: {className: Not_A_Class, host: mesh.example.com}\n",
            ":10:26: spec.targets.ingress.className: `Not_A_Class` is not a valid Kubernetes object name",
        ),
    ];
    for (targets, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let f = task_file(dir.path(), "t.yaml", &mesh(targets));
        let out = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{targets}: {text}");
        assert!(text.contains(want), "{targets}: {want:?} in\n{text}");
    }
    // a cell is judged by its success rate, mean and p99: other percentiles are refused
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &mesh("    paths: [pod]\n").replace("latency: {p99: 1s}", "latency: {p50: 1s, p99: 1s}"),
    );
    let out = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(":7:43: spec.expect.latency.p50: a Mesh does not judge a cell's p50"),
        "{text}"
    );
}

// --- the agent in a pod (`kpatrol-probe reach`), driven as the launcher drives it ---

mod agents {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use kpatrol::judge::matrix::PathName;
    use kpatrol::modes::reach::agent::client::{self, ControlError, Reachable, fetch_row, finish, gather, send_orders};
    use kpatrol::modes::reach::agent::{Aim, Orders, Row};

    use super::support::{task_file, wait_addr};

    const PROBE: &str = env!("CARGO_BIN_EXE_kpatrol-probe");
    const TOKEN: &str = "round-token-7";

    fn task(duration: &str, round_timeout: &str) -> String {
        format!(
            "apiVersion: kpatrol.dev/v1\nkind: Mesh\nmetadata: {{name: mesh}}\nspec:\n  roundTimeout: {round_timeout}\n  pressure: {{qps: 10, duration: {duration}, timeout: 1s}}\n  expect: {{successRate: 1}}\n  targets: {{paths: [pod]}}\n"
        )
    }

    /// A free port on `ip` (bound, then released for the agent).
    fn free(ip: [u8; 4]) -> SocketAddr {
        std::net::TcpListener::bind(SocketAddr::from((ip, 0)))
            .unwrap()
            .local_addr()
            .unwrap()
    }

    struct Agent {
        addr: SocketAddr,
        log: PathBuf,
        child: tokio::process::Child,
    }

    fn start(task: &Path, dir: &Path, i: u8) -> Agent {
        let addr = free([127, 0, 0, 2 + i]);
        let log = dir.join(format!("agent-{i}.termination-log"));
        let child = tokio::process::Command::new(PROBE)
            .args(["reach", "--task"])
            .arg(task)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--termination-log")
            .arg(&log)
            .env("KPATROL_MESH_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Agent { addr, log, child }
    }

    fn orders(agents: &[Agent], source: u32) -> Orders {
        Orders {
            source,
            nodes: (0..agents.len()).map(|i| format!("node-{i}")).collect(),
            paths: vec![PathName {
                path: "pod".into(),
                family: "ipv4".into(),
            }],
            aims: agents
                .iter()
                .enumerate()
                .map(|(j, a)| Aim {
                    target: j as u32,
                    path: 0,
                    url: format!("http://{}/", a.addr),
                    host: None,
                })
                .collect(),
        }
    }

    /// The agent's row, polled until it is ready (bounded).
    async fn row_of(client: &reqwest::Client, base: &str, within: Duration) -> Row {
        let deadline = Instant::now() + within;
        loop {
            if let Some(row) = fetch_row(client, base, Some(TOKEN)).await.unwrap() {
                return row;
            }
            assert!(Instant::now() < deadline, "{base}: no row within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await; // polling the agent, bounded
        }
    }

    async fn exit_of(a: &mut Agent, within: Duration) -> (i32, serde_json::Value) {
        let status = tokio::time::timeout(within, a.child.wait())
            .await
            .expect("the agent exits in time")
            .unwrap();
        let log = std::fs::read_to_string(&a.log).unwrap();
        assert!(log.len() <= 4096, "a bounded termination message");
        (status.code().unwrap(), serde_json::from_str(&log).unwrap())
    }

    #[tokio::test]
    async fn agents_press_what_the_launcher_orders_and_hand_over_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let t = task_file(dir.path(), "t.yaml", &task("1s", "1m"));
        let mut agents: Vec<Agent> = (0..3).map(|i| start(&t, dir.path(), i)).collect();
        for a in &agents {
            wait_addr(a.addr, "an agent", Duration::from_secs(30));
        }
        let client = client::new(Duration::from_secs(5)).unwrap();
        let base = |a: &Agent| format!("http://{}", a.addr);
        // the target answers on every other path, as kpatrol serve does
        let answer = client
            .get(format!("{}/anything", base(&agents[0])))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        // without the round's token nobody can aim an agent
        match send_orders(&client, &base(&agents[0]), Some("wrong"), &orders(&agents, 0)).await {
            Err(ControlError::Status { status: 403, .. }) => {}
            other => panic!("a wrong token is refused: {other:?}"),
        }
        for (i, a) in agents.iter().enumerate() {
            send_orders(&client, &base(a), Some(TOKEN), &orders(&agents, i as u32))
                .await
                .unwrap();
        }
        // the launcher gathers every row (and tells each agent it may exit); an agent that
        // is gone is named, by the deadline
        let gone = free([127, 0, 0, 9]);
        let mut reachable: Vec<Reachable> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| Reachable {
                source: i as u32,
                base: base(a),
            })
            .collect();
        reachable.push(Reachable {
            source: 3,
            base: format!("http://{gone}"),
        });
        let started = Instant::now();
        let got = gather(
            &client,
            reachable,
            Some(TOKEN),
            tokio::time::Instant::now() + Duration::from_secs(8),
            2,
            &kpatrol::pressure::Stop::new(),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(12), "bounded by the deadline");
        assert_eq!(got.silent.len(), 1, "{:?}", got.silent);
        assert_eq!(got.silent[0].0, 3);
        assert_eq!(got.rows.len(), 3);
        for (i, row) in got.rows.iter().enumerate() {
            assert_eq!(row.source, i as u32);
            assert!(!row.stopped);
            assert_eq!(row.cells.len(), 3, "{row:?}");
            for c in &row.cells {
                assert_eq!((c.source, c.path), (i as u32, 0));
                assert_eq!((c.sent, c.ok), (10, 10), "{row:?}");
            }
        }
        for a in &mut agents {
            let (code, msg) = exit_of(a, Duration::from_secs(10)).await;
            assert_eq!(code, 0, "{msg}");
            assert_eq!(msg["verdict"], "pass");
            assert_eq!(msg["mode"], "reach");
        }
    }

    #[tokio::test]
    async fn an_agent_without_orders_gives_up_by_the_round_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let t = task_file(dir.path(), "t.yaml", &task("1s", "3s"));
        let mut a = start(&t, dir.path(), 3);
        wait_addr(a.addr, "an agent", Duration::from_secs(30));
        let (code, msg) = exit_of(&mut a, Duration::from_secs(20)).await;
        assert_eq!(code, 2, "{msg}");
        assert_eq!(msg["verdict"], "error");
        assert!(
            msg["error"].as_str().unwrap().contains("no orders came within 3s"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn sigterm_ends_the_pressing_and_the_row_is_still_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let t = task_file(dir.path(), "t.yaml", &task("60s", "2m"));
        let mut a = start(&t, dir.path(), 4);
        wait_addr(a.addr, "an agent", Duration::from_secs(30));
        let client = client::new(Duration::from_secs(5)).unwrap();
        let base = format!("http://{}", a.addr);
        send_orders(&client, &base, Some(TOKEN), &orders(std::slice::from_ref(&a), 0))
            .await
            .unwrap();
        // pressing: no row yet
        assert!(fetch_row(&client, &base, Some(TOKEN)).await.unwrap().is_none());
        let pid = a.child.id().unwrap();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let row = row_of(&client, &base, Duration::from_secs(20)).await;
        assert!(row.stopped, "{row:?}");
        assert_eq!(row.cells.len(), 1);
        finish(&client, &base, Some(TOKEN)).await.unwrap();
        let (code, msg) = exit_of(&mut a, Duration::from_secs(10)).await;
        assert_eq!(code, 1, "a stopped round fails: {msg}");
        assert_eq!(msg["stopped"], true);
    }

    #[test]
    fn listen_is_the_agents_alone() {
        let dir = tempfile::tempdir().unwrap();
        let t = task_file(
            dir.path(),
            "h.yaml",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: h}\nspec:\n  targets: [{url: \"http://127.0.0.1:9/\"}]\n",
        );
        let out = std::process::Command::new(PROBE)
            .args(["http", "--listen", "127.0.0.1:8080", "--task"])
            .arg(&t)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--listen is for the mesh's agent (kpatrol-probe reach), not the http mode"),
            "{err}"
        );
    }
}
