//! The HTTP mode end to end against real servers on loopback: HTTP/1.1, h2c, HTTPS with a
//! CA, mTLS, kdoctor's TLS Secret rule, a stalling server (latency from the intended send
//! time), 500s, resets, refused connections, timeouts, bodies, headers and redirects.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kpatrol::judge::{Measure, Subject, Verdict};
use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use kpatrol::report::RoundReport;
use support::*;

/// Loads the one task of `yaml` (written into `dir`) and runs one round.
async fn round_in(dir: &Path, yaml: &str) -> (RoundReport, Verdict) {
    let file = task_file(dir, "task.yaml", yaml);
    let ft = kpatrol::plan::load_file(&file).unwrap();
    assert!(
        ft.diagnostics
            .iter()
            .all(|d| d.severity != kpatrol::diag::Severity::Error),
        "{:?}",
        ft.diagnostics
    );
    let plan = ft.plans.into_iter().next().expect("one task");
    kpatrol::round::execute(&plan, &Mounts::new(dir.join("mounts")), Stop::new())
        .await
        .expect("round runs")
}

async fn round(yaml: &str) -> (RoundReport, Verdict) {
    let dir = tempfile::tempdir().unwrap();
    round_in(dir.path(), yaml).await
}

fn check(yaml_targets: &str, pressure: &str, expect: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: t}}\nspec:\n  pressure: {pressure}\n  expect: {expect}\n  targets:\n{yaml_targets}"
    )
}

#[tokio::test]
async fn http1_round_passes_and_counts_every_request() {
    let s = http(Behaviour::Ok).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n      http: \"1.1\"\n", s.url("http", "/")),
        // 50 ms between slots: the last still leaves in time on a loaded machine
        "{qps: 20, duration: 1s, timeout: 1s}",
        "{successRate: 1, latency: {p99: 500ms}, status: [200]}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let t = &r.targets[0];
    assert_eq!((t.planned, t.sent, t.unsent, t.answered), (Some(20), 20, 0, 20));
    assert_eq!(t.codes.get("200"), Some(&20));
    assert_eq!(s.seen.requests.load(Ordering::SeqCst), 20);
    assert_eq!(s.seen.http2.load(Ordering::SeqCst), 0);
    // reused connections: far fewer connections than requests
    assert!(
        s.seen.connections.load(Ordering::SeqCst) < 10,
        "{} connections",
        s.seen.connections.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn fresh_connections_open_one_connection_per_request() {
    let s = http(Behaviour::Ok).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("http", "/")),
        "{qps: 40, duration: 500ms, timeout: 1s, connections: fresh}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[0].sent, 20);
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let s = http(Behaviour::Ok).await;
    let (_, v) = round(&check(
        &format!("    - url: {}\n      http: \"2\"\n", s.url("http", "/")),
        "{qps: 40, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(s.seen.http2.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn https_with_ca_negotiates_h2_by_alpn_or_stays_on_http1() {
    let pki = Pki::new();
    let s = https(Behaviour::Ok, &pki, false).await;
    let yaml = |version: &str| {
        check(
            &format!(
                "    - url: {}\n      http: \"{version}\"\n      tls: {{ca: {}}}\n",
                s.url("https", "/"),
                pki.ca.display()
            ),
            "{qps: 40, duration: 500ms}",
            "{successRate: 1}",
        )
    };
    let (_, v) = round(&yaml("auto")).await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(s.seen.http2.load(Ordering::SeqCst), 20);
    let (_, v) = round(&yaml("1.1")).await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(s.seen.requests.load(Ordering::SeqCst), 40);
    assert_eq!(
        s.seen.http2.load(Ordering::SeqCst),
        20,
        "the second round must have used HTTP/1.1"
    );
}

#[tokio::test]
async fn https_unknown_ca_fails_with_tls_errors_unless_verification_is_skipped() {
    let pki = Pki::new();
    let s = https(Behaviour::Ok, &pki, false).await;
    // verification with the public roots: the test CA is unknown
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("https", "/")),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("tls"), Some(&10), "{:?}", r.targets[0].errors);
    // a wrong CA
    let (r, _) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{ca: {}}}\n",
            s.url("https", "/"),
            pki.other_ca.display()
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert_eq!(r.targets[0].errors.get("tls"), Some(&10));
    // skipping verification only when asked
    let (_, v) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{insecureSkipVerify: true}}\n",
            s.url("https", "/")
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
}

#[tokio::test]
async fn mtls_needs_the_client_certificate() {
    let pki = Pki::new();
    let s = https(Behaviour::Ok, &pki, true).await;
    let (r, v) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{ca: {}}}\n",
            s.url("https", "/"),
            pki.ca.display()
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].answered, 0);
    assert_eq!(r.targets[0].failed, 10, "{:?}", r.targets[0].errors);
    let (_, v) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{ca: {}, cert: {}, key: {}}}\n",
            s.url("https", "/"),
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
}

#[tokio::test]
async fn tls_server_name_overrides_the_name_checked() {
    let pki = Pki::new();
    let s = https(Behaviour::Ok, &pki, false).await;
    let (_, v) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{ca: {}, serverName: target.kpatrol.test}}\n",
            s.url("https", "/"),
            pki.ca.display()
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let (r, _) = round(&check(
        &format!(
            "    - url: {}\n      tls: {{ca: {}, serverName: other.kpatrol.test}}\n",
            s.url("https", "/"),
            pki.ca.display()
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert_eq!(r.targets[0].errors.get("tls"), Some(&10));
}

fn kdoctor_https(url: &str, extra_target: &str) -> String {
    format!(
        "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {{name: https}}\nspec:\n  request: {{durationInSecond: 1, perRequestTimeoutInMS: 1000, qps: 10}}\n  schedule: {{roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}}\n  expect: {{meanAccessDelayInMs: 1000, successRate: 1, statusCode: 200}}\n  target:\n    host: {url}\n    method: GET\n{extra_target}"
    )
}

#[tokio::test]
async fn kdoctor_tls_secret_verifies_only_with_ca_crt() {
    let pki = Pki::new();
    let s = https(Behaviour::Ok, &pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("mounts/secrets/https-client-cert");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::copy(&pki.client_cert, secret.join("tls.crt")).unwrap();
    std::fs::copy(&pki.client_key, secret.join("tls.key")).unwrap();
    let yaml = kdoctor_https(
        &s.url("https", "/"),
        "    tlsSecretName: https-client-cert\n    tlsSecretNamespace: kdoctor-test-server\n",
    );
    // no ca.crt: kdoctor does not verify the server, and the client certificate is sent
    let (r, v) = round_in(dir.path(), &yaml).await;
    assert!(v.passed(), "{:#?} {:?}", v.checks, r.targets[0].errors);
    assert_eq!(r.targets[0].sent, 10);
    // a ca.crt that did not sign the server: verification on, TLS errors
    std::fs::copy(&pki.other_ca, secret.join("ca.crt")).unwrap();
    let (r, v) = round_in(dir.path(), &yaml).await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("tls"), Some(&10));
    // the right ca.crt
    std::fs::copy(&pki.ca, secret.join("ca.crt")).unwrap();
    let (_, v) = round_in(dir.path(), &yaml).await;
    assert!(v.passed(), "{:#?}", v.checks);
}

#[tokio::test]
async fn a_stall_shows_in_the_percentiles_because_latency_counts_from_the_intended_time() {
    // 200 qps for 2 s; the server holds every request arriving between 0.5 s and 1.1 s
    // until 1.1 s. About 120 requests are due in the stall: a closed-loop client would
    // send few of them and report a clean p99.
    let s = http(Behaviour::Stall {
        from: Duration::from_millis(500),
        length: Duration::from_millis(600),
    })
    .await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("http", "/")),
        "{qps: 200, duration: 2s, timeout: 3s}",
        "{successRate: 1, latency: {p99: 100ms}}",
    ))
    .await;
    let t = &r.targets[0];
    assert_eq!((t.sent, t.unsent, t.answered), (400, 0, 400));
    assert!(
        t.latency_ms.unwrap().p90 >= Duration::from_millis(200),
        "p90 {:?}",
        t.latency_ms
    );
    assert!(
        t.latency_ms.unwrap().p99 >= Duration::from_millis(500),
        "p99 {:?}",
        t.latency_ms
    );
    assert!(
        t.latency_ms.unwrap().p50 < Duration::from_millis(100),
        "p50 {:?}",
        t.latency_ms
    );
    assert!(!v.passed());
    assert_eq!(
        v.failed().map(|c| c.measure.name()).collect::<Vec<_>>(),
        ["latency p99"]
    );
}

#[tokio::test]
async fn a_full_in_flight_bound_delays_slots_and_the_delay_is_measured() {
    // One attempt in flight, each answered after 50 ms, slots every 10 ms: slots leave
    // late; their latency includes the wait, and what could not leave in time is unsent.
    let s = http(Behaviour::Delay(Duration::from_millis(50))).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("http", "/")),
        "{qps: 100, duration: 1s, timeout: 2s, maxInFlight: 1}",
        "{successRate: 1}",
    ))
    .await;
    let t = &r.targets[0];
    assert_eq!(t.sent + t.unsent, 100);
    assert!(t.unsent >= 60, "{t:?}");
    assert!(
        t.latency_ms.unwrap().max >= Duration::from_millis(500),
        "{:?}",
        t.latency_ms
    );
    assert!(!v.passed());
    assert!(v.failed().any(|c| c.measure == Measure::AllSent));
}

#[tokio::test]
async fn server_errors_fail_the_success_rate_but_count_for_kdoctor_without_status_code() {
    let s = http(Behaviour::Status(500)).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("http", "/")),
        "{qps: 20, duration: 500ms}",
        "{successRate: 0.99}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].codes.get("500"), Some(&10));
    assert_eq!(r.targets[0].succeeded, 0);
    // kdoctor: without statusCode any answer counts as a success
    let yaml = format!(
        "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {{name: h}}\nspec:\n  request: {{durationInSecond: 1, perRequestTimeoutInMS: 1000, qps: 10}}\n  schedule: {{roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}}\n  expect: {{meanAccessDelayInMs: 1000, successRate: 1}}\n  target: {{host: {}, method: GET}}\n",
        s.url("http", "/")
    );
    let (r, v) = round(&yaml).await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[0].succeeded, 10);
    // ... and with statusCode 200 the 500s are failures
    let (_, v) = round(&yaml.replace("successRate: 1}", "successRate: 1, statusCode: 200}")).await;
    assert!(!v.passed());
}

#[tokio::test]
async fn resets_refusals_and_timeouts_are_classified() {
    let reset = resetting().await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", reset.url("http", "/")),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("reset"), Some(&10), "{:?}", r.targets[0].errors);

    let closed = closed_port().await;
    let (r, _) = round(&check(
        &format!("    - url: http://{closed}/\n"),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert_eq!(
        r.targets[0].errors.get("refused"),
        Some(&10),
        "{:?}",
        r.targets[0].errors
    );

    let slow = http(Behaviour::Delay(Duration::from_secs(5))).await;
    let started = std::time::Instant::now();
    let (r, _) = round(&check(
        &format!("    - url: {}\n", slow.url("http", "/")),
        "{qps: 20, duration: 500ms, timeout: 200ms}",
        "{successRate: 1}",
    ))
    .await;
    assert_eq!(
        r.targets[0].errors.get("timeout"),
        Some(&10),
        "{:?}",
        r.targets[0].errors
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the round must not wait for the slow server"
    );
}

#[tokio::test]
async fn method_headers_and_body_from_a_file_reach_the_server() {
    let s = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), br#"{"hello":"world"}"#).unwrap();
    let secret = dir.path().join("mounts/secrets/api-token");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "Bearer s3cret\n").unwrap();
    let yaml = check(
        &format!(
            "    - url: {}\n      method: PUT\n      headers: {{Content-Type: application/json, X-Count: 5, Authorization: {{secret: api-token, key: token}}}}\n      bodyFile: body.json\n",
            s.url("http", "/things")
        ),
        "{qps: 10, duration: 300ms}",
        "{successRate: 1}",
    );
    let (_, v) = round_in(dir.path(), &yaml).await;
    assert!(v.passed(), "{:#?}", v.checks);
    let (method, path, headers, body) = s.seen.last.lock().unwrap().clone().unwrap();
    assert_eq!((method.as_str(), path.as_str()), ("PUT", "/things"));
    assert!(
        headers.contains(&("content-type".into(), "application/json".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("x-count".into(), "5".into())));
    assert!(headers.contains(&("authorization".into(), "Bearer s3cret".into())));
    assert_eq!(body, br#"{"hello":"world"}"#);
}

#[tokio::test]
async fn kdoctor_body_configmap_is_sent_as_json_of_its_data() {
    let s = http(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let cm = dir.path().join("mounts/configmaps/kdoctor-test-body");
    std::fs::create_dir_all(cm.join("..2024_01_01")).unwrap();
    std::fs::write(cm.join("test1"), "one").unwrap();
    std::fs::write(cm.join("test2"), "two").unwrap();
    let yaml = kdoctor_https(&s.url("http", "/"), "    bodyConfigmapName: kdoctor-test-body\n    bodyConfigmapNamespace: kdoctor-test-server\n    header: [\"Content-Type: application/json\"]\n").replace("method: GET", "method: POST");
    let (_, v) = round_in(dir.path(), &yaml).await;
    assert!(v.passed(), "{:#?}", v.checks);
    let (method, _, headers, body) = s.seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(method, "POST");
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"test1":"one","test2":"two"}"#);
}

#[tokio::test]
async fn a_missing_mounted_configmap_means_the_round_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = task_file(
        dir.path(),
        "t.yaml",
        &kdoctor_https(
            "http://127.0.0.1:9/",
            "    bodyConfigmapName: nope\n    bodyConfigmapNamespace: x\n",
        ),
    );
    let plan = kpatrol::plan::load_file(&file).unwrap().plans.remove(0);
    let err = kpatrol::round::execute(&plan, &Mounts::new(dir.path().join("mounts")), Stop::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("configmaps/nope"), "{err}");
}

#[tokio::test]
async fn redirects_are_reported_unless_following_is_asked() {
    let s = http(Behaviour::Redirect).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("http", "/")),
        "{qps: 10, duration: 300ms}",
        "{successRate: 1, status: [200]}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].codes.get("302"), Some(&3));
    let (r, v) = round(&check(
        &format!("    - url: {}\n      followRedirects: true\n", s.url("http", "/")),
        "{qps: 10, duration: 300ms}",
        "{successRate: 1, status: [200]}",
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    assert_eq!(r.targets[0].codes.get("200"), Some(&3));
}

#[tokio::test]
async fn every_method_is_sent_as_asked() {
    let s = http(Behaviour::Ok).await;
    for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let (_, v) = round(&check(
            &format!("    - url: {}\n      method: {m}\n", s.url("http", "/")),
            "{qps: 10, duration: 100ms}",
            "{successRate: 1}",
        ))
        .await;
        assert!(v.passed(), "{m}: {:#?}", v.checks);
        assert_eq!(s.seen.last.lock().unwrap().as_ref().unwrap().0, m);
    }
}

#[tokio::test]
async fn several_targets_are_pressed_at_once_and_judged_per_target_and_round() {
    let ok = http(Behaviour::Ok).await;
    let bad = http(Behaviour::Status(503)).await;
    let (r, v) = round(&check(
        &format!(
            "    - {{name: ok, url: \"{}\"}}\n    - {{name: bad, url: \"{}\", expect: {{successRate: 0}}}}\n",
            ok.url("http", "/"),
            bad.url("http", "/")
        ),
        "{qps: 20, duration: 500ms}",
        "{successRate: 1}",
    ))
    .await;
    assert_eq!(
        r.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ok", "bad"]
    );
    // `bad` expects failures (its own successRate 0): the round does not check it again
    assert!(v.passed(), "{:#?}", v.checks);
    let round: Vec<String> = v
        .checks
        .iter()
        .filter(|c| c.subject == Subject::Round)
        .map(|c| c.measure.name())
        .collect();
    assert_eq!(round, ["all sent"]);
}

#[tokio::test]
async fn https_to_a_plain_http_port_is_a_tls_error() {
    let s = http(Behaviour::Ok).await;
    let (r, v) = round(&check(
        &format!("    - url: {}\n", s.url("https", "/")),
        "{qps: 20, duration: 200ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(!v.passed());
    assert_eq!(r.targets[0].errors.get("tls"), Some(&4), "{:?}", r.targets[0].errors);
    assert!(
        r.targets[0].error_samples["tls"].contains("corrupt message"),
        "{:?}",
        r.targets[0].error_samples
    );
}

#[tokio::test]
async fn secret_header_values_never_show_in_error_samples() {
    // A target that echoes the request: its "answer" starts with our own request, Secret
    // headers included. No sample may show any of a Secret's value, not even a part.
    let s = raw_answering(Answer::Echo, true).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("mounts/secrets/vhost");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("host"), "zq9hv-7kqx.w4t\n").unwrap();
    std::fs::write(secret.join("token"), "Bearer Kx7Tqz9Wv3\n").unwrap();
    let secrets = ["zq9hv-7kqx.w4t", "Bearer Kx7Tqz9Wv3"];
    // the lean HTTP/1.1 path, and reqwest's (redirects take it)
    for extra in ["", "      followRedirects: true\n"] {
        let yaml = check(
            &format!(
                "    - url: {}\n      headers: {{Host: {{secret: vhost, key: host}}, X: {{secret: vhost, key: token}}}}\n{extra}",
                s.url("http", "/")
            ),
            "{qps: 10, duration: 300ms}",
            "{successRate: 1}",
        );
        let (r, v) = round_in(dir.path(), &yaml).await;
        assert!(!v.passed());
        let t = &r.targets[0];
        assert_eq!(t.errors.get("protocol"), Some(&3), "{extra}: {:?}", t.errors);
        let json = serde_json::to_string(&r).unwrap();
        for secret in secrets {
            for part in secret.as_bytes().windows(4) {
                let part = std::str::from_utf8(part).unwrap();
                assert!(
                    !json.contains(part),
                    "{extra}: `{part}` of a Secret in {:?}",
                    t.error_samples
                );
            }
        }
    }
    // the lean path's sample still shows what came back, redacted
    let (r, _) = round_in(
        dir.path(),
        &check(
            &format!(
                "    - url: {}\n      headers: {{Host: {{secret: vhost, key: host}}}}\n",
                s.url("http", "/")
            ),
            "{qps: 10, duration: 300ms}",
            "{successRate: 1}",
        ),
    )
    .await;
    let sample = &r.targets[0].error_samples["protocol"];
    assert!(
        sample.contains("GET / HTTP/1.1") && sample.contains("redacted"),
        "{sample}"
    );
}

#[tokio::test]
async fn a_host_header_from_the_task_is_sent_once_and_wins() {
    let s = http(Behaviour::Ok).await;
    // the lean path (auto, 1.1) and reqwest's (redirects take it)
    for extra in ["", "      http: \"1.1\"\n", "      followRedirects: true\n"] {
        let (_, v) = round(&check(
            &format!(
                "    - url: {}\n      headers: {{Host: vhost.example}}\n{extra}",
                s.url("http", "/")
            ),
            "{qps: 10, duration: 300ms}",
            "{successRate: 1}",
        ))
        .await;
        assert!(v.passed(), "{:#?}", v.checks);
        let (_, _, headers, _) = s.seen.last.lock().unwrap().clone().unwrap();
        let hosts: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(hosts, ["vhost.example"], "{extra}");
    }
}

#[tokio::test]
async fn answers_later_than_the_timeout_are_timeouts() {
    // Answers 5.3 ms after each request, with a 5 ms timeout (kdoctor's default): every one
    // is late. The timer's millisecond steps must not let some through as successes.
    let addr = raw_delayed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_micros(5300),
    );
    for extra in ["", "      followRedirects: true\n"] {
        let (r, v) = round(&check(
            &format!("    - url: http://{addr}/\n{extra}"),
            "{qps: 50, duration: 1s, timeout: 5ms}",
            "{successRate: 1}",
        ))
        .await;
        let t = &r.targets[0];
        assert!(!v.passed());
        assert_eq!((t.sent, t.answered), (50, 0), "{extra}: {:?}", t.errors);
        assert_eq!(t.errors.get("timeout"), Some(&50), "{extra}: {:?}", t.errors);
    }
    // and answers within the timeout still count
    let (r, v) = round(&check(
        &format!("    - url: http://{addr}/\n"),
        "{qps: 50, duration: 500ms, timeout: 100ms}",
        "{successRate: 1}",
    ))
    .await;
    assert!(v.passed(), "{:?}", r.targets[0].errors);
}

/// Peak RSS of a finished child, from wait4's rusage (the kernel's VmHWM of the process).
fn wait_peak_rss(child: std::process::Child) -> (std::process::ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain wait4 on our own child, with valid pointers to locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child); // reaped above
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as u64 * 1024,
    )
}

/// Runs `kpatrol run` on `targets` targets of `s` at 10 qps for 1 s; returns its peak RSS.
async fn peak_rss_of_a_run(s: &Server, targets: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let list: String = (0..targets)
        .map(|i| format!("    - {{name: t{i}, url: \"{}\"}}\n", s.url("http", &format!("/{i}"))))
        .collect();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &check(&list, "{qps: 10, duration: 1s, timeout: 1s}", "{successRate: 0}"),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .args(["run", "-o", "json"])
        .arg(&f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak) = tokio::task::spawn_blocking(move || wait_peak_rss(child)).await.unwrap();
    assert_eq!(status.code(), Some(0), "the round must run and pass");
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_targets_fit_in_a_small_pod() {
    // The goal: 20 MB plus 64 KiB per target. The per-target part is measured as the growth
    // from one target to 100 (at 10 qps each, through the real binary); the base is checked
    // on its own, with room for the unoptimised code a debug build maps.
    const TARGETS: u64 = 100;
    let s = http(Behaviour::Ok).await;
    let base = peak_rss_of_a_run(&s, 1).await;
    let peak = peak_rss_of_a_run(&s, TARGETS).await;
    assert!(s.seen.requests.load(Ordering::SeqCst) >= (TARGETS + 1) * 9);
    let base_goal: u64 = if cfg!(debug_assertions) { 32_000_000 } else { 20_000_000 };
    assert!(base < base_goal, "one target: peak RSS {} KiB", base / 1024);
    let growth = peak.saturating_sub(base);
    eprintln!(
        "peak RSS: {} KiB with one target, {} KiB with {TARGETS}",
        base / 1024,
        peak / 1024
    );
    assert!(
        growth < (TARGETS - 1) * 64 * 1024,
        "{TARGETS} targets: peak RSS {} KiB, {} KiB over one target",
        peak / 1024,
        growth / 1024
    );
    let estimate =
        |n| kpatrol::pressure::memory_estimate(kpatrol::plan::Rate::Fixed(10.0), Duration::from_secs(1), 256, n);
    assert!(
        growth < estimate(TARGETS as usize) - estimate(1),
        "growth {} KiB over the estimate",
        growth / 1024
    );
}
