//! The TCP mode against real listeners on loopback (127.0.0.1 and ::1): one that accepts
//! (pass), a closed port (refused: fail, exit 1), one that accepts and never answers (with
//! a payload and an expected reply: timeout), one that answers the wrong reply (protocol),
//! the right reply (pass), a greeting without a payload, any reply to a payload, a
//! connection closed before the reply; the reset that ends attempts (and `close: graceful`); `kpatrol run` and `kpatrol-probe tcp` with their exit
//! codes; bad tasks through `kpatrol validate` with the exact messages; render with no
//! mounts and no API access.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use kpatrol::judge::Verdict;
use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use kpatrol::report::RoundReport;
use support::{closed_port, probe_round, sockets_to, task_file};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");

/// What a test listener does with each connection it accepts.
#[derive(Clone, Copy)]
enum Peer {
    /// Accepts and closes.
    Accept,
    /// Reads whatever comes and never writes, until the client goes.
    Silent,
    /// Reads the request (its first bytes), writes this, then waits for the client to go.
    Reply(&'static [u8]),
    /// Writes this at once (a greeting), then waits for the client to go.
    Greet(&'static [u8]),
    /// Reads the request, writes this, then closes.
    ReplyAndClose(&'static [u8]),
    /// Reads the request, then closes without a word.
    Hangup,
}

struct Listener {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn listen(on: &str, peer: Peer) -> Listener {
    let listener = TcpListener::bind(on).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                match peer {
                    Peer::Accept => {}
                    Peer::Silent => drain(&mut s).await,
                    Peer::Reply(r) => {
                        if matches!(s.read(&mut buf).await, Ok(n) if n > 0) && s.write_all(r).await.is_ok() {
                            drain(&mut s).await;
                        }
                    }
                    Peer::Greet(g) => {
                        if s.write_all(g).await.is_ok() {
                            drain(&mut s).await;
                        }
                    }
                    Peer::ReplyAndClose(r) => {
                        if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                            let _ = s.write_all(r).await;
                        }
                    }
                    Peer::Hangup => {
                        let _ = s.read(&mut buf).await;
                    }
                }
            });
        }
    });
    Listener { addr, task }
}

fn task(pressure: &str, targets: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: TcpCheck\nmetadata: {{name: t}}\nspec:\n  pressure: {pressure}\n  targets:\n{targets}"
    )
}

/// 20 attempts, a generous timeout (two cores run the rest of the suite beside it).
const P: &str = "{qps: 50, duration: 400ms, timeout: 2s}";
/// 10 attempts with a short timeout, for listeners that never answer.
const SHORT: &str = "{qps: 50, duration: 200ms, timeout: 200ms}";

async fn round(yaml: &str) -> (RoundReport, Verdict) {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", yaml);
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:#?}", ft.diagnostics);
    let plan = ft.plans.into_iter().next().expect("a task");
    assert_eq!(plan.mode.name(), "tcp");
    kpatrol::round::execute(&plan, &Mounts::new(dir.path()), Stop::new())
        .await
        .expect("round runs")
}

#[tokio::test]
async fn a_listener_that_accepts_passes_on_ipv4_ipv6_and_by_name() {
    let v4 = listen("127.0.0.1:0", Peer::Accept).await;
    let v6 = listen("[::1]:0", Peer::Accept).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - address: \"{}\"\n    - address: \"{}\"\n    - {{name: by-name, address: \"localhost:{}\"}}\n",
            v4.addr,
            v6.addr,
            v4.addr.port()
        ),
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [v4.addr.to_string().as_str(), &v6.addr.to_string(), "by-name"]);
    for t in &r.targets {
        assert_eq!((t.planned, t.sent, t.answered), (Some(20), 20, 20), "{}", t.name);
        assert_eq!(t.codes.get("connected"), Some(&20), "{}", t.name);
        assert!(t.errors.is_empty(), "{}: {:?}", t.name, t.errors);
    }
    assert!(v.checks[0].threshold.ends_with("connected"), "{:?}", v.checks[0]);
}

#[tokio::test]
async fn a_closed_port_is_refused_and_fails() {
    let addr = closed_port().await;
    let (r, v) = round(&task(P, &format!("    - address: \"{addr}\"\n"))).await;
    assert!(!v.passed());
    let t = &r.targets[0];
    assert_eq!((t.sent, t.answered), (20, 0));
    assert_eq!(t.errors.get("refused"), Some(&20), "{:?}", t.errors);
    assert!(
        t.error_samples["refused"].starts_with(&format!("connect to {addr}: ")),
        "{:?}",
        t.error_samples
    );
}

#[tokio::test]
async fn a_listener_that_never_answers_times_out() {
    let l = listen("127.0.0.1:0", Peer::Silent).await;
    let (r, v) = round(&task(
        SHORT,
        &format!(
            "    - {{address: \"{}\", send: \"PING\\r\\n\", expect: \"+PONG\"}}\n",
            l.addr
        ),
    ))
    .await;
    assert!(!v.passed());
    let t = &r.targets[0];
    assert_eq!((t.sent, t.answered), (10, 0));
    assert_eq!(t.errors.get("timeout"), Some(&10), "{:?}", t.errors);
    assert_eq!(
        t.error_samples["timeout"],
        format!("connected to {}, no reply within 200ms", l.addr)
    );
}

#[tokio::test]
async fn the_wrong_reply_is_a_protocol_error() {
    let l = listen("127.0.0.1:0", Peer::Reply(b"-ERR unknown command\r\n")).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - {{address: \"{}\", send: \"PING\\r\\n\", expect: \"+PONG\"}}\n",
            l.addr
        ),
    ))
    .await;
    assert!(!v.passed());
    let t = &r.targets[0];
    assert_eq!(t.errors.get("protocol"), Some(&20), "{:?}", t.errors);
    assert_eq!(
        t.error_samples["protocol"],
        format!(
            "{} replied \"-ERR unknown command\\r\\n\", not a reply starting with \"+PONG\"",
            l.addr
        )
    );
}

#[tokio::test]
async fn the_right_reply_passes() {
    let l = listen("127.0.0.1:0", Peer::Reply(b"+PONG\r\n")).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - {{name: redis, address: \"{}\", send: \"PING\\r\\n\", expect: {{reply: \"+PONG\\r\\n\", successRate: 1}}}}\n",
            l.addr
        ),
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let t = &r.targets[0];
    assert_eq!(t.codes.get("replied"), Some(&20), "{:?}", t.codes);
    assert!(v.checks[0].threshold.ends_with("replied"), "{:?}", v.checks[0]);
}

#[tokio::test]
async fn a_greeting_is_judged_without_a_payload_and_any_reply_counts_without_a_prefix() {
    let ssh = listen("127.0.0.1:0", Peer::Greet(b"SSH-2.0-test\r\n")).await;
    let echo = listen("127.0.0.1:0", Peer::Reply(b"anything")).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - {{address: \"{}\", expect: SSH-2.0}}\n    - {{address: \"{}\", send: hello}}\n",
            ssh.addr, echo.addr
        ),
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[0].codes.get("replied"), Some(&20));
    assert_eq!(r.targets[1].codes.get("replied"), Some(&20));
}

#[tokio::test]
async fn a_connection_closed_before_the_reply_is_a_protocol_error() {
    let hangup = listen("127.0.0.1:0", Peer::Hangup).await;
    let short = listen("127.0.0.1:0", Peer::ReplyAndClose(b"+PO")).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - {{name: hangup, address: \"{}\", send: x}}\n    - {{name: short, address: \"{}\", send: x, expect: +PONG}}\n",
            hangup.addr, short.addr
        ),
    ))
    .await;
    assert!(!v.passed());
    let samples = |i: usize| r.targets[i].error_samples.get("protocol").cloned().unwrap_or_default();
    assert_eq!(
        r.targets[0].errors.get("protocol"),
        Some(&20),
        "{:?}",
        r.targets[0].errors
    );
    assert_eq!(
        samples(0),
        format!("{} closed the connection without replying", hangup.addr)
    );
    assert_eq!(
        r.targets[1].errors.get("protocol"),
        Some(&20),
        "{:?}",
        r.targets[1].errors
    );
    assert_eq!(
        samples(1),
        format!(
            "{} closed the connection after replying \"+PO\", the start of \"+PONG\"",
            short.addr
        )
    );
}

#[tokio::test]
async fn attempts_close_with_a_reset_unless_asked_to_close_gracefully() {
    // The listener reads until the client goes, then closes: a graceful close by the client
    // leaves its side in FIN_WAIT2, then TIME_WAIT for a minute; a reset leaves nothing.
    let reset = listen("127.0.0.1:0", Peer::Silent).await;
    let graceful = listen("127.0.0.1:0", Peer::Silent).await;
    let (r, v) = round(&task(
        P,
        &format!(
            "    - {{address: \"{}\"}}\n    - {{address: \"{}\", close: graceful}}\n",
            reset.addr, graceful.addr
        ),
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[1].codes.get("connected"), Some(&20));
    assert_eq!(sockets_to(reset.addr.port()), 0, "a reset leaves no socket behind");
    assert_eq!(
        sockets_to(graceful.addr.port()),
        20,
        "each graceful close leaves its socket"
    );
}

fn kpatrol(args: &[&str], file: &std::path::Path) -> std::process::Output {
    Command::new(KPATROL).args(args).arg(file).output().unwrap()
}

#[tokio::test]
async fn run_exits_0_on_pass_1_on_fail_and_2_when_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let up = listen("127.0.0.1:0", Peer::Accept).await;
    let down = closed_port().await;
    let pass = task_file(
        dir.path(),
        "pass.yaml",
        &task(P, &format!("    - address: \"{}\"\n", up.addr)),
    );
    let fail = task_file(
        dir.path(),
        "fail.yaml",
        &task(P, &format!("    - address: \"{down}\"\n")),
    );
    let out = tokio::task::spawn_blocking(move || {
        (
            kpatrol(&["run", "-o", "json"], &pass),
            kpatrol(&["run", "-o", "json"], &fail),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        out.0.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.0.stdout).unwrap();
    assert_eq!(
        (r["kind"].as_str(), r["mode"].as_str()),
        (Some("TcpCheck"), Some("tcp"))
    );
    assert_eq!(r["targets"][0]["codes"]["connected"], 20);
    assert_eq!(out.1.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.1.stdout).unwrap();
    assert_eq!(r["targets"][0]["errors"]["refused"], 20);
    // an invalid task cannot run
    let bad = task_file(dir.path(), "bad.yaml", &task(P, "    - address: \"127.0.0.1\"\n"));
    let out = kpatrol(&["run"], &bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.targets[0].address: `127.0.0.1` has no port"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn probe_tcp_runs_a_round_and_other_modes_refuse_the_task() {
    let l = listen("127.0.0.1:0", Peer::Reply(b"+PONG\r\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(
            P,
            &format!(
                "    - {{address: \"{}\", send: \"PING\\r\\n\", expect: \"+PONG\"}}\n",
                l.addr
            ),
        ),
    );
    let log = dir.path().join("log");
    let out = probe_round("tcp", &f, &log).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], "tcp");
    assert_eq!(r["targets"][0]["codes"]["replied"], 20);
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "pass");
    let out = probe_round("http", &f, &log).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mode `tcp`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_tcp_tasks_name_the_file_line_field_and_what_is_allowed() {
    const ADDRESS: &str =
        "(allowed: HOST:PORT with a port 1–65535, e.g. kube-dns.kube-system:53, 10.0.0.1:443, [::1]:8080)";
    const SEND: &str = "(allowed: text written once connected (YAML escapes such as \"PING\\r\\n\"), at most 65536 bytes; leave `send` out to only connect)";
    const PREFIX: &str = "(allowed: the text the reply starts with (YAML escapes such as \"+PONG\\r\\n\"), at most 1024 bytes; `send` without `expect` accepts any reply)";
    let long = "x".repeat(1025);
    let cases: Vec<(String, String)> = vec![
        (
            "    - address: kube-dns\n".into(),
            format!("t.yaml:7:16: spec.targets[0].address: `kube-dns` has no port {ADDRESS}"),
        ),
        (
            "    - address: \"10.0.0.1:\"\n".into(),
            format!("t.yaml:7:16: spec.targets[0].address: `10.0.0.1:` has no port {ADDRESS}"),
        ),
        (
            "    - address: \"a:70000\"\n".into(),
            format!("t.yaml:7:16: spec.targets[0].address: port 70000 is out of range {ADDRESS}"),
        ),
        (
            "    - address: \"a:0\"\n".into(),
            format!("t.yaml:7:16: spec.targets[0].address: port 0 is out of range {ADDRESS}"),
        ),
        (
            "    - address: \"\"\n".into(),
            format!("t.yaml:7:16: spec.targets[0].address: the address is empty {ADDRESS}"),
        ),
        (
            "    - address: \"::1:53\"\n".into(),
            format!(
                "t.yaml:7:16: spec.targets[0].address: `::1:53` is an IPv6 address without brackets, so it has no port: write [ADDRESS]:PORT {ADDRESS}"
            ),
        ),
        (
            "    - address: \"a_b..c:80\"\n".into(),
            format!(
                "t.yaml:7:16: spec.targets[0].address: `a_b..c` is not a valid host name: it has an empty part (`..`, or a leading dot) {ADDRESS}"
            ),
        ),
        (
            "    - name: x\n".into(),
            "t.yaml:7:7: spec.targets[0].address: required field is missing".into(),
        ),
        (
            "    - {name: \"\", address: \"a:1\"}\n".into(),
            "t.yaml:7:14: spec.targets[0].name: a target name cannot be blank (allowed: a name, or leave `name` out for the default)".into(),
        ),
        (
            "    - {address: \"a:1\", port: 2}\n".into(),
            "t.yaml:7:24: spec.targets[0].port: unknown field (allowed: address, close, expect, name, send)".into(),
        ),
        (
            "    - {address: \"a:1\", close: fin}\n".into(),
            "t.yaml:7:31: spec.targets[0].close: `fin` is not allowed (allowed: reset, graceful)".into(),
        ),
        (
            "    - {address: \"a:1\", send: \"\"}\n".into(),
            format!("t.yaml:7:30: spec.targets[0].send: the payload is empty {SEND}"),
        ),
        (
            "    - {address: \"a:1\", expect: \"\"}\n".into(),
            format!("t.yaml:7:32: spec.targets[0].expect: the reply prefix is empty {PREFIX}"),
        ),
        (
            format!("    - {{address: \"a:1\", expect: {{reply: {long}}}}}\n"),
            format!("t.yaml:7:40: spec.targets[0].expect.reply: the reply prefix has 1025 bytes {PREFIX}"),
        ),
        (
            "    - {address: \"a:1\", expect: {status: [200]}}\n".into(),
            "t.yaml:7:33: spec.targets[0].expect.status: unknown field (allowed: allSent, latency, reply, successRate)"
                .into(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (target, want) in &cases {
        let f = task_file(dir.path(), "t.yaml", &task(P, target));
        let out = kpatrol(&["validate"], &f);
        let text = String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", dir.path().display()), "");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("t.yaml:")).collect();
        if out.status.code() != Some(1) || errors != [want.as_str()] {
            wrong.push(format!(
                "{target}  want: {want}\n  got ({:?}): {errors:?}",
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // a reply prefix belongs to a target
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(P, "    - address: \"a:1\"\n").replace("spec:\n", "spec:\n  expect: {reply: x}\n"),
    );
    let out = kpatrol(&["validate"], &f);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("t.yaml:5:12: spec.expect.reply: unknown field (allowed: allSent, latency, successRate)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_tcp_task_renders_without_mounts_or_api_access() {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: TcpCheck\nmetadata: {name: tcp}\nspec:\n  schedule: \"@every 10m\"\n  agents: {count: 2}\n  targets:\n    - address: kube-dns.kube-system:53\n    - {address: \"10.0.0.1:443\", send: \"PING\\r\\n\", expect: \"+PONG\"}\n",
    );
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:#?}", ft.diagnostics);
    let r = kpatrol::render::render(&ft.plans, &Default::default()).expect("renders");
    let text = &r.files["kpatrol-tcp.yaml"];
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(kinds, ["ConfigMap", "CronJob"], "{text}");
    assert!(text.contains("- tcp\n"), "the probe's mode: {text}");
    assert!(text.contains("automountServiceAccountToken: false"), "{text}");
    assert!(!text.contains("/etc/kpatrol/secrets"), "{text}");
}
