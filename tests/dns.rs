//! The DNS mode against a real unbound on loopback: UDP on 127.0.0.1 and ::1, TCP
//! (pipelined and fresh), DNS over TLS (right and wrong CA), DNS over HTTPS, rcodes,
//! answer checks, truncation, a server that drops queries, a refusing port, and kdoctor's
//! Netdns unchanged. Impostors on loopback (a UDP echo service, servers answering another
//! question with the right ID, over UDP and TCP) must not pass.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpatrol::judge::Verdict;
use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use kpatrol::report::RoundReport;
use support::unbound::Unbound;
use support::*;

async fn round(yaml: &str) -> (RoundReport, Verdict) {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(dir.path(), "t.yaml", yaml);
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(
        ft.diagnostics
            .iter()
            .all(|d| d.severity != kpatrol::diag::Severity::Error),
        "{:#?}",
        ft.diagnostics
    );
    let plan = ft.plans.into_iter().next().expect("a task");
    kpatrol::round::execute(&plan, &Mounts::new(dir.path()), Stop::new())
        .await
        .expect("round runs")
}

fn check(target: &str, pressure: &str, expect: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: DnsCheck\nmetadata: {{name: d}}\nspec:\n  pressure: {pressure}\n  expect: {expect}\n  targets:\n{target}"
    )
}

const P: &str = "{qps: 100, duration: 500ms, timeout: 1s}";

#[tokio::test]
async fn udp_on_ipv4_answers_every_query_with_the_expected_address() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - server: \"127.0.0.1:{}\"\n      queries: [{{name: web.kpatrol.test, type: A}}]\n",
            u.port
        ),
        P,
        // the latency limit is generous: two cores run the rest of the suite beside it
        "{successRate: 1, rcodes: [NOERROR], answers: {contain: [127.0.0.10], min: 1}, latency: {p99: 500ms}}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let t = &r.targets[0];
    assert_eq!((t.planned, t.sent, t.answered), (Some(50), 50, 50));
    assert_eq!(t.codes.get("NOERROR"), Some(&50));
    assert!(v.checks[0].threshold.contains("NOERROR"), "{:?}", v.checks[0]);
}

#[tokio::test]
async fn udp_on_ipv6_loopback_with_aaaa_and_other_record_types() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - server: \"[::1]:{}\"\n      queries:\n        - {{name: web.kpatrol.test, type: AAAA}}\n        - {{name: alias.kpatrol.test, type: CNAME}}\n        - {{name: txt.kpatrol.test, type: TXT}}\n        - {{name: mail.kpatrol.test, type: MX}}\n        - {{name: _http._tcp.kpatrol.test, type: SRV}}\n      expect: {{answers: {{min: 1}}}}\n",
            u.port
        ),
        P,
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?} {:?}", v.checks, r.targets[0].codes);
    assert_eq!(r.targets[0].codes.get("NOERROR"), Some(&50));
}

#[tokio::test]
async fn several_names_are_spread_over_the_rate() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - server: \"127.0.0.1:{}\"\n      queries: [{{name: web.kpatrol.test}}, {{name: nx.kpatrol.test}}]\n",
            u.port
        ),
        P,
        "{successRate: 0.5, rcodes: [NOERROR]}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[0].codes.get("NOERROR"), Some(&25));
    assert_eq!(r.targets[0].codes.get("NXDOMAIN"), Some(&25));
}

#[tokio::test]
async fn nxdomain_fails_by_default_and_passes_when_expected() {
    let u = Unbound::start();
    let target = format!(
        "    - server: \"127.0.0.1:{}\"\n      queries: [{{name: nx.kpatrol.test}}]\n",
        u.port
    );
    let (r, v) = round(&check(&target, P, "{successRate: 1}")).await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].codes.get("NXDOMAIN"), Some(&50));
    let (_, v) = round(&check(&target, P, "{successRate: 1, rcodes: [NXDOMAIN]}")).await;
    assert!(v.passed(), "{:#?}", v.checks);
    let refused = format!(
        "    - server: \"127.0.0.1:{}\"\n      queries: [{{name: x.refused.test}}]\n",
        u.port
    );
    let (r, _) = round(&check(&refused, P, "{successRate: 1}")).await;
    assert_eq!(r.targets[0].codes.get("REFUSED"), Some(&50));
}

#[tokio::test]
async fn an_answer_without_the_expected_records_is_a_wrong_answer() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - server: \"127.0.0.1:{}\"\n      queries: [{{name: web.kpatrol.test}}]\n",
            u.port
        ),
        P,
        "{successRate: 1, answers: {contain: [10.0.0.1]}}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].codes.get("WRONG_ANSWER"), Some(&50));
}

#[tokio::test]
async fn tcp_pipelined_and_fresh() {
    let u = Unbound::start();
    for conn in ["reuse", "fresh"] {
        let (r, v) = round(&check(
            &format!(
                "    - server: \"127.0.0.1:{}\"\n      protocol: tcp\n      queries: [{{name: web.kpatrol.test}}]\n",
                u.port
            ),
            &format!("{{qps: 200, duration: 500ms, timeout: 1s, connections: {conn}}}"),
            "{successRate: 1, answers: {contain: [127.0.0.10]}}",
        ))
        .await;
        assert!(v.passed(), "{conn}: {:#?} {:?}", v.checks, r.targets[0].errors);
        assert_eq!(r.targets[0].answered, 100, "{conn}");
    }
    // a fresh connection per query ends with a reset: none of its 100 is left in TIME_WAIT
    // (the pipelined round's own connection or two, closed gracefully at its end, remain)
    let left = sockets_to(u.port);
    assert!(left < 10, "{left} sockets left");
}

#[tokio::test]
async fn dns_over_tls_verifies_the_server_with_the_ca() {
    let u = Unbound::start();
    let target = |ca: &std::path::Path| {
        format!(
            "    - server: \"127.0.0.1:{}\"\n      protocol: tls\n      tls: {{ca: {}, serverName: target.kpatrol.test}}\n      queries: [{{name: web.kpatrol.test}}]\n",
            u.dot_port,
            ca.display()
        )
    };
    let (r, v) = round(&check(&target(&u.pki.ca), P, "{successRate: 1}")).await;
    assert!(v.passed(), "{:#?} {:?}", v.checks, r.targets[0].errors);
    let (r, v) = round(&check(&target(&u.pki.other_ca), P, "{successRate: 1}")).await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("tls"), Some(&50), "{:?}", r.targets[0].errors);
}

#[tokio::test]
async fn dns_over_https() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - url: \"https://127.0.0.1:{}/dns-query\"\n      tls: {{ca: {}}}\n      queries: [{{name: web.kpatrol.test, type: AAAA}}]\n",
            u.doh_port,
            u.pki.ca.display()
        ),
        P,
        "{successRate: 1, answers: {contain: [\"::1\"]}}",
    ))
    .await;
    assert!(
        v.passed(),
        "{:#?} {:?} {:?}",
        v.checks,
        r.targets[0].errors,
        r.targets[0].codes
    );
}

#[tokio::test]
async fn truncated_udp_answers_are_errors() {
    let u = Unbound::start();
    let (r, v) = round(&check(
        &format!(
            "    - server: \"127.0.0.1:{}\"\n      edns: false\n      queries: [{{name: big.kpatrol.test}}]\n",
            u.port
        ),
        P,
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("truncated"), Some(&50), "{:?}", r.targets[0]);
}

#[tokio::test]
async fn a_server_that_drops_queries_gives_timeouts_within_the_timeout() {
    // bound, never read: queries vanish
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let started = std::time::Instant::now();
    let (r, v) = round(&check(
        &format!("    - server: \"{addr}\"\n      queries: [{{name: web.kpatrol.test}}]\n"),
        "{qps: 100, duration: 500ms, timeout: 200ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("timeout"), Some(&50));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(silent);
}

#[tokio::test]
async fn a_closed_udp_port_is_refused() {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    drop(s);
    let (r, _) = round(&check(
        &format!("    - server: \"{addr}\"\n      queries: [{{name: web.kpatrol.test}}]\n"),
        "{qps: 20, duration: 500ms, timeout: 500ms, maxInFlight: 1}",
        "{successRate: 1}",
    ))
    .await;
    let t = &r.targets[0];
    assert_eq!(t.answered, 0);
    assert!(t.errors.get("refused").copied().unwrap_or(0) >= 5, "{:?}", t.errors);
}

fn netdns(server: &str, port: u16, protocol: &str, domain: &str) -> String {
    format!(
        "apiVersion: kdoctor.io/v1beta1\nkind: Netdns\nmetadata: {{name: user}}\nspec:\n  expect: {{meanAccessDelayInMs: 1500, successRate: 1}}\n  request: {{domain: {domain}, durationInSecond: 1, perRequestTimeoutInMS: 1000, protocol: {protocol}, qps: 20}}\n  schedule: {{roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}}\n  target:\n    targetUser: {{port: {port}, server: \"{server}\"}}\n"
    )
}

#[tokio::test]
async fn kdoctor_netdns_any_reply_succeeds_over_udp_tcp_and_unverified_tls() {
    let u = Unbound::start();
    for (server, port, proto) in [
        ("127.0.0.1", u.port, "udp"),
        ("::1", u.port, "udp"),
        ("127.0.0.1", u.port, "tcp"),
        ("127.0.0.1", u.dot_port, "tcp-tls"),
    ] {
        // kdoctor: NXDOMAIN is a reply, and a reply is a success
        let (r, v) = round(&netdns(server, port, proto, "nx.kpatrol.test")).await;
        assert!(
            v.passed(),
            "{server} {proto}: {:#?} {:?}",
            v.checks,
            r.targets[0].errors
        );
        assert_eq!(r.targets[0].codes.get("NXDOMAIN"), Some(&20), "{proto}");
        let want = if server == "::1" {
            "typeAAAA_[::1]"
        } else {
            "typeA_127.0.0.1"
        };
        assert!(r.targets[0].name.as_str().starts_with(want), "{}", r.targets[0].name);
    }
}

/// kdoctor names a `targetDns` target by the Service's address, which only the pod finds:
/// the round takes that name for its results, checks, report and the plan telemetry reads.
/// (A real Service name is looked up through the host's resolver, which a test may not
/// change; the target here is given the address, with the naming rule of `targetDns`.)
#[tokio::test]
async fn a_target_named_after_its_server_goes_by_the_address_found() {
    let u = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &netdns("127.0.0.1", u.port, "udp", "web.kpatrol.test"),
    );
    let mut plan = kpatrol::plan::load_file(&f).unwrap().plans.remove(0);
    let kpatrol::modes::Mode::Dns(d) = &mut plan.mode else {
        panic!("a DNS plan")
    };
    d.targets[0].name = "typeA_coredns.kube-system:53_web.kpatrol.test".into();
    d.targets[0].named_after_server = Some(("typeA_".into(), "_web.kpatrol.test".into()));
    let f = kpatrol::round::execute_round(&plan, &Mounts::new(dir.path()), Stop::new(), None)
        .await
        .unwrap();
    let want = format!("typeA_127.0.0.1:{}_web.kpatrol.test", u.port);
    assert!(f.verdict.passed(), "{:#?}", f.verdict.checks);
    assert_eq!(f.report.targets[0].name.as_str(), want);
    assert!(
        f.verdict.checks.iter().all(|c| c.subject.to_string() == want),
        "{:#?}",
        f.verdict.checks
    );
    assert_eq!(f.round.targets[0].id.as_str(), want);
    assert_eq!(f.plan.targets()[0].0, want, "the plan telemetry reads");
    assert_eq!(
        plan.targets()[0].0,
        "typeA_coredns.kube-system:53_web.kpatrol.test",
        "the task's own plan is untouched"
    );
}

#[tokio::test]
async fn probe_dns_subcommand_runs_a_round() {
    let u = Unbound::start();
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &netdns("127.0.0.1", u.port, "udp", "web.kpatrol.test"),
    );
    let log = dir.path().join("log");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpatrol-probe"))
        .args(["dns", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], "dns");
    assert_eq!(r["targets"][0]["codes"]["NOERROR"], 20);
    // the http subcommand refuses a dns task
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kpatrol-probe"))
        .args(["http", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn errors(yaml: &str) -> Vec<String> {
    let ft = kpatrol::plan::load_str(std::path::Path::new("d.yaml"), yaml).unwrap();
    ft.diagnostics
        .iter()
        .filter(|d| d.severity == kpatrol::diag::Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn bad_dns_tasks_name_the_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "    - server: dns.example\n      queries: [{name: a.example}]\n",
            "d.yaml:8:15: spec.targets[0].server: `dns.example` is not an address (allowed: an IP address, optionally with a port",
        ),
        (
            "    - server: 127.0.0.1\n      queries: [{name: a.example, type: AAAAA}]\n",
            "d.yaml:9:41: spec.targets[0].queries[0].type: `AAAAA` is not allowed (did you mean `AAAA`?) (allowed: A, AAAA, CNAME, SRV, TXT, MX, PTR, NS, SOA)",
        ),
        (
            "    - server: 127.0.0.1\n      protocol: tls\n      queries: [{name: a.example}]\n",
            "d.yaml:8:7: spec.targets[0].tls.serverName: DNS over TLS needs the server's name to verify its certificate",
        ),
        (
            "    - server: 127.0.0.1\n      queries: [{name: a.example}]\n      expect: {rcodes: [NOERORR]}\n",
            "d.yaml:10:25: spec.targets[0].expect.rcodes[0]: `NOERORR` is not allowed (did you mean `NOERROR`?)",
        ),
        (
            "    - queries: [{name: a.example}]\n",
            "d.yaml:8:7: spec.targets[0]: no server given",
        ),
        (
            "    - server: 127.0.0.1\n      queries: [{name: \"bad..name\"}]\n",
            "d.yaml:9:24: spec.targets[0].queries[0].name: `bad..name` is not a valid host name",
        ),
    ];
    for (target, want) in cases {
        let errs = errors(&check(target, "{qps: 10}", "{}"));
        assert!(errs.iter().any(|e| e.starts_with(want)), "want {want}\ngot {errs:#?}");
    }
    let errs = errors(&check(
        "    - server: 127.0.0.1\n      queries: [{name: a}]\n",
        "{qps: 2000000}",
        "{}",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("d.yaml:5:19: spec.pressure.qps: qps 2000000 is out of range")),
        "{errs:#?}"
    );
    let mut kd = netdns("127.0.0.1", 53, "udp", "a.example").replace("qps: 20", "qps: 100");
    let errs = errors(&kd);
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.request.qps: Netdns requires qps 100 within kdoctor's limit (allowed: 1–99")),
        "{errs:#?}"
    );
    kd = netdns("dns.example", 53, "udp", "a.example");
    let errs = errors(&kd);
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.target.targetUser.server: `dns.example` is not an IP address")),
        "{errs:#?}"
    );
}

/// What an impostor does with one query: the datagrams (or TCP messages) it sends back.
type Answer = fn(&[u8]) -> Vec<Vec<u8>>;

/// A UDP server on loopback answering every query with `answer`; records the query IDs.
async fn udp_impostor(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = ids.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            seen.lock().unwrap().push(u16::from_be_bytes([buf[0], buf[1]]));
            for r in answer(&buf[..n]) {
                let _ = s.send_to(&r, from).await;
            }
        }
    });
    (addr, ids)
}

/// The same over TCP (length-prefixed messages, any number per connection).
async fn tcp_impostor(answer: Answer) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Ok(len) = c.read_u16().await {
                    let mut q = vec![0u8; len as usize];
                    if c.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    for r in answer(&q) {
                        let mut f = (r.len() as u16).to_be_bytes().to_vec();
                        f.extend_from_slice(&r);
                        if c.write_all(&f).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A NOERROR reply to `query` (its ID, its question) with one A record 127.0.0.10.
fn good_reply(query: &[u8]) -> Vec<u8> {
    let mut end = 12;
    while query[end] != 0 {
        end += 1 + query[end] as usize;
    }
    end += 5;
    let mut r = query[..end].to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80; // RA, NOERROR
    r[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 10]);
    r
}

/// The right ID, another name: `xeb.kpatrol.test` for `web.kpatrol.test`.
fn other_name(q: &[u8]) -> Vec<Vec<u8>> {
    let mut r = good_reply(q);
    r[13] = b'x';
    vec![r]
}

/// The right ID and name, another type (AAAA).
fn other_type(q: &[u8]) -> Vec<Vec<u8>> {
    let mut r = good_reply(q);
    let n = r.len() - 16;
    r[n - 3] = 28;
    vec![r]
}

/// A reply to another question first, then the real answer with the name's case changed
/// (as resolvers using 0x20 do).
fn wrong_then_right(q: &[u8]) -> Vec<Vec<u8>> {
    let mut right = good_reply(q);
    right[13..16].copy_from_slice(b"WeB");
    vec![other_name(q).remove(0), right]
}

fn echo(q: &[u8]) -> Vec<Vec<u8>> {
    vec![q.to_vec()]
}

// a timeout that a loaded machine's scheduling stalls do not reach
const IMPOSTOR: &str = "{qps: 100, duration: 500ms, timeout: 1s}";

fn web_at(addr: SocketAddr, protocol: &str) -> String {
    format!("    - server: \"{addr}\"\n      protocol: {protocol}\n      queries: [{{name: web.kpatrol.test}}]\n")
}

#[tokio::test]
async fn a_udp_echo_service_is_not_a_dns_server() {
    let (addr, _) = udp_impostor(echo).await;
    let started = std::time::Instant::now();
    let (r, v) = round(&check(
        &web_at(addr, "udp"),
        IMPOSTOR,
        "{successRate: 1, rcodes: [NOERROR]}",
    ))
    .await;
    assert!(!v.passed(), "{:#?}", v.checks);
    let t = &r.targets[0];
    assert_eq!(t.answered, 0, "{:?}", t.codes);
    assert_eq!(t.errors.get("protocol"), Some(&50), "{:?}", t.errors);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_reply_to_another_question_with_the_right_id_does_not_count() {
    for (what, answer) in [("name", other_name as Answer), ("type", other_type)] {
        let (addr, _) = udp_impostor(answer).await;
        let (r, v) = round(&check(
            &web_at(addr, "udp"),
            IMPOSTOR,
            "{successRate: 1, answers: {contain: [127.0.0.10]}}",
        ))
        .await;
        assert!(!v.passed(), "another {what}: {:#?}", v.checks);
        let t = &r.targets[0];
        assert_eq!(
            (t.answered, t.errors.get("protocol")),
            (0, Some(&50)),
            "another {what}: {t:?}"
        );
    }
    // the same over TCP: a pipelined connection waits for the real answer, a fresh one
    // knows at once that none will come
    let addr = tcp_impostor(other_name).await;
    for conn in ["reuse", "fresh"] {
        let (r, v) = round(&check(
            &web_at(addr, "tcp"),
            &format!("{{qps: 100, duration: 500ms, timeout: 1s, connections: {conn}}}"),
            "{successRate: 1}",
        ))
        .await;
        assert!(!v.passed(), "tcp {conn}: {:#?}", v.checks);
        let t = &r.targets[0];
        assert_eq!(
            (t.answered, t.errors.get("protocol")),
            (0, Some(&50)),
            "tcp {conn}: {t:?}"
        );
    }
}

#[tokio::test]
async fn the_real_answer_after_a_mismatched_one_counts() {
    let (addr, ids) = udp_impostor(wrong_then_right).await;
    let (r, v) = round(&check(
        &web_at(addr, "udp"),
        IMPOSTOR,
        "{successRate: 1, answers: {contain: [127.0.0.10]}}",
    ))
    .await;
    assert!(v.passed(), "{:#?} {:?}", v.checks, r.targets[0]);
    assert_eq!(r.targets[0].codes.get("NOERROR"), Some(&50));
    let addr = tcp_impostor(wrong_then_right).await;
    let (r, v) = round(&check(&web_at(addr, "tcp"), IMPOSTOR, "{successRate: 1}")).await;
    assert!(v.passed(), "tcp: {:#?} {:?}", v.checks, r.targets[0]);
    // query IDs are random, not a counter an off-path spoofer can follow
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 50);
    let steps = ids.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
    assert!(steps < 5, "{steps} sequential IDs: {ids:?}");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert!(distinct.len() >= 48, "{} distinct IDs: {ids:?}", distinct.len());
}
