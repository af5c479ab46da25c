//! The lean HTTP/1.1 path against raw servers that answer in every shape HTTP/1.1 allows:
//! chunked bodies with trailers, bodies that run to the end of the connection, 1xx before
//! the answer, `Connection: close`, idle connections the server closed (retried once), many
//! header fields, and heads and bodies in separate writes; and in shapes it does not: heads
//! that never end, bodies that trickle or never end.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use support::*;

async fn run(url: &str, extra: &str, qps: u32) -> kpatrol::report::RoundReport {
    run_pressed(
        url,
        extra,
        &format!("{{qps: {qps}, duration: 500ms, timeout: 1s, maxInFlight: 1}}"),
    )
    .await
}

async fn run_pressed(url: &str, extra: &str, pressure: &str) -> kpatrol::report::RoundReport {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: h1}}\nspec:\n  pressure: {pressure}\n  targets:\n    - url: \"{url}\"\n{extra}"
    );
    let f = task_file(dir.path(), "t.yaml", &yaml);
    let plan = kpatrol::plan::load_file(&f).unwrap().plans.remove(0);
    kpatrol::round::execute(&plan, &Mounts::new(dir.path()), Stop::new())
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn chunked_bodies_with_trailers_keep_the_connection() {
    let s = raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", false).await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(
        (r.targets[0].sent, r.targets[0].answered),
        (10, 10),
        "{:?}",
        r.targets[0].errors
    );
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_without_length_runs_to_the_end_of_the_connection() {
    let s = raw(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this is the body",
        true,
    )
    .await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(r.targets[0].answered, 10, "{:?}", r.targets[0].errors);
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let s = raw(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        false,
    )
    .await;
    let r = run(
        &s.url("http", "/"),
        "      method: POST\n      body: \"{}\"\n      expect: {status: [201]}\n",
        20,
    )
    .await;
    assert_eq!(r.targets[0].codes.get("201"), Some(&10), "{:?}", r.targets[0]);
    assert_eq!(r.verdict, kpatrol::report::RoundOutcome::Pass);
}

#[tokio::test]
async fn connection_close_opens_a_new_connection_each_time() {
    let s = raw(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        true,
    )
    .await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(r.targets[0].answered, 10);
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_retried_once() {
    // Says nothing about closing, then closes: the next request on the pooled connection
    // gets no answer at all, and must be retried on a fresh connection, not counted as an error.
    let s = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(
        (r.targets[0].answered, r.targets[0].failed),
        (10, 0),
        "{:?}",
        r.targets[0].errors
    );
}

#[tokio::test]
async fn head_and_no_content_answers_have_no_body() {
    let s = raw(b"HTTP/1.1 204 No Content\r\n\r\n", false).await;
    let r = run(&s.url("http", "/"), "      expect: {status: [204]}\n", 20).await;
    assert_eq!(r.targets[0].codes.get("204"), Some(&10));
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 1);
    let s = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false).await;
    let r = run(&s.url("http", "/"), "      method: HEAD\n", 20).await;
    assert_eq!(r.targets[0].codes.get("200"), Some(&10), "{:?}", r.targets[0].errors);
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn garbage_and_truncated_answers_are_protocol_and_reset_errors() {
    let s = raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", true).await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(
        r.targets[0].errors.get("protocol"),
        Some(&10),
        "{:?}",
        r.targets[0].errors
    );
    let s = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true).await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(r.targets[0].errors.get("reset"), Some(&10), "{:?}", r.targets[0].errors);
}

#[tokio::test]
async fn a_head_that_never_ends_is_a_protocol_error_at_64_kib() {
    // Header lines forever: the head is cut at 64 KiB and counted as `protocol`, at once,
    // not after the timeout and not after buffering whatever the server sends.
    let s = raw_answering(
        Answer::Endless {
            start: b"HTTP/1.1 200 OK\r\n",
            chunk: b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            pause: Duration::ZERO,
        },
        false,
    )
    .await;
    let started = Instant::now();
    let r = run_pressed(&s.url("http", "/"), "", "{qps: 20, duration: 500ms, timeout: 5s}").await;
    let t = &r.targets[0];
    assert_eq!(t.errors.get("protocol"), Some(&10), "{:?}", t.errors);
    assert!(t.error_samples["protocol"].contains("64 KiB"), "{:?}", t.error_samples);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bodies_that_trickle_or_never_end_are_cut_at_the_timeout() {
    let trickle = raw_answering(
        Answer::Endless {
            start: b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
            chunk: b"x",
            pause: Duration::from_millis(20),
        },
        false,
    )
    .await;
    let endless = raw_answering(
        Answer::Endless {
            start: b"HTTP/1.0 200 OK\r\n\r\n",
            chunk: &[b'y'; 16384],
            pause: Duration::ZERO,
        },
        false,
    )
    .await;
    for s in [&trickle, &endless] {
        let started = Instant::now();
        let r = run_pressed(&s.url("http", "/"), "", "{qps: 20, duration: 500ms, timeout: 200ms}").await;
        let t = &r.targets[0];
        assert_eq!((t.sent, t.answered), (10, 0), "{:?}", t.errors);
        assert_eq!(t.errors.get("timeout"), Some(&10), "{:?}", t.errors);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn answers_with_many_header_fields_are_accepted() {
    let mut answer = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..300 {
        answer.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    answer.push_str("Content-Length: 2\r\n\r\nok");
    let s = raw(Box::leak(answer.into_bytes().into_boxed_slice()), false).await;
    let r = run(&s.url("http", "/"), "", 20).await;
    assert_eq!(
        (r.targets[0].answered, r.targets[0].failed),
        (10, 0),
        "{:?}",
        r.targets[0].errors
    );
    assert_eq!(s.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_head_and_body_in_two_writes_are_measured_without_delayed_acks() {
    // The server writes head and body separately with Nagle on: its body waits for our ACK
    // of the head. A client that delays that ACK (Linux: 40 ms once a connection is busy)
    // measures its own ACK policy, not the server.
    let s = raw_answering(
        Answer::Split(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"ok\n"),
        false,
    )
    .await;
    let r = run_pressed(&s.url("http", "/"), "", "{qps: 50, duration: 1s, timeout: 1s}").await;
    let t = &r.targets[0];
    assert_eq!(t.answered, 50, "{:?}", t.errors);
    let l = t.latency_ms.unwrap();
    assert!(l.p50 < Duration::from_millis(10), "{l:?}");
    assert!(s.seen.connections.load(Ordering::SeqCst) <= 2);
}
