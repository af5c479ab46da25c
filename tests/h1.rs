//! The lean HTTP/1.1 path against raw servers that answer in every shape HTTP/1.1 allows:
//! chunked bodies with trailers, bodies that run to the end of the connection, 1xx before
//! the answer, `Connection: close`, and idle connections the server closed (retried once).

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;

use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use support::*;

async fn run(url: &str, extra: &str, qps: u32) -> kpatrol::report::RoundReport {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: h1}}\nspec:\n  pressure: {{qps: {qps}, duration: 500ms, timeout: 1s, maxInFlight: 1}}\n  targets:\n    - url: \"{url}\"\n{extra}"
    );
    let f = task_file(dir.path(), "t.yaml", &yaml);
    let plan = kpatrol::task::load_file(&f).unwrap().plans.remove(0);
    kpatrol::local::execute(&plan, &Mounts::new(dir.path()), Stop::new(), false)
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
    assert_eq!(r.verdict, "pass");
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
