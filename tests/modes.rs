//! The mode registry: every mode registered in `kpatrol::modes` that runs has an example
//! here, and each example validates, plans, renders and runs a round that passes against a
//! real server on loopback. A new mode without an example fails
//! `every_mode_that_runs_has_an_example`.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use support::unbound::Unbound;
use support::*;

/// The modes with an example below.
const EXAMPLES: &[&str] = &["http", "dns", "tcp", "disk", "sql"];

#[test]
fn every_mode_that_runs_has_an_example() {
    let running: Vec<&str> = kpatrol::modes::probe_modes().map(|m| m.name).collect();
    assert_eq!(running, EXAMPLES, "add an example for each new mode below");
    let native: Vec<&str> = kpatrol::modes::native_kinds().map(|k| k.kind).collect();
    assert_eq!(
        native,
        ["HttpCheck", "DnsCheck", "Mesh", "TcpCheck", "DiskCheck", "SqlCheck"]
    );
    assert_eq!(
        kpatrol::task::native_kinds(),
        native,
        "the kind list in errors is the registry's"
    );
}

/// Validates, plans, renders and runs `yaml`; the round must pass in the expected mode, its
/// first target answering 10 times.
async fn example(mode: &str, yaml: &str) {
    let report = run_example(mode, yaml).await;
    assert_eq!(report.targets[0].answered, 10, "{mode}");
}

/// Validates, plans, renders and runs `yaml`; the round must pass in the expected mode.
async fn run_example(mode: &str, yaml: &str) -> kpatrol::report::RoundReport {
    let dir = tempfile::tempdir().unwrap();
    // the mounts hold the Secret a SQL example logs in with
    support::sql::write_credentials(dir.path(), support::sql::PASSWORD);
    let f = task_file(dir.path(), "t.yaml", yaml);
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(ft.diagnostics.is_empty(), "{mode}: {:#?}", ft.diagnostics);
    let plan = ft.plans.into_iter().next().expect("a task");
    assert_eq!(plan.mode.name(), mode);
    assert!(plan.mode.renders());
    let rendered = kpatrol::render::render(std::slice::from_ref(&plan), &Default::default());
    let rendered = rendered.unwrap_or_else(|d| panic!("{mode} renders: {d:#?}"));
    assert!(!rendered.files.is_empty(), "{mode}: nothing rendered");
    let (report, verdict) = kpatrol::round::execute(&plan, &Mounts::new(dir.path()), Stop::new())
        .await
        .expect("round runs");
    assert!(verdict.passed(), "{mode}: {:#?}", verdict.checks);
    assert_eq!(report.mode, mode);
    report
}

#[tokio::test]
async fn http_example() {
    let s = http(Behaviour::Ok).await;
    example(
        "http",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: h}}\nspec:\n  pressure: {{qps: 20, duration: 500ms, timeout: 2s}}\n  targets: [{{url: \"http://{}/\"}}]\n",
            s.addr
        ),
    )
    .await;
}

#[tokio::test]
async fn dns_example() {
    let u = Unbound::start();
    example(
        "dns",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: DnsCheck\nmetadata: {{name: d}}\nspec:\n  pressure: {{qps: 20, duration: 500ms, timeout: 2s}}\n  targets: [{{server: \"127.0.0.1:{}\", queries: [{{name: web.kpatrol.test}}]}}]\n",
            u.port
        ),
    )
    .await;
}

#[tokio::test]
async fn tcp_example() {
    // a real HTTP server: the example sends a request line and expects the status line
    let s = http(Behaviour::Ok).await;
    example(
        "tcp",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: TcpCheck\nmetadata: {{name: t}}\nspec:\n  pressure: {{qps: 20, duration: 500ms, timeout: 2s}}\n  targets: [{{address: \"{}\", send: \"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n\", expect: \"HTTP/1.1 200\"}}]\n",
            s.addr
        ),
    )
    .await;
}

#[tokio::test]
async fn disk_example() {
    // a real folder: as fast as the disk answers, so the counts vary; each measure ran
    let folder = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let report = run_example(
        "disk",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: DiskCheck\nmetadata: {{name: k}}\nspec:\n  pressure: {{duration: 500ms, timeout: 5s}}\n  expect: {{fdatasync: {{p99: 5s}}}}\n  targets: [{{name: f, path: \"{}\", size: 1Mi}}]\n",
            folder.path().display()
        ),
    )
    .await;
    assert_eq!(report.targets.len(), 5);
    assert!(
        report.targets.iter().all(|t| t.answered > 0 && t.failed == 0),
        "{:#?}",
        report.targets
    );
}

#[tokio::test]
async fn sql_example() {
    let pg = support::sql::postgres(None);
    example(
        "sql",
        &format!(
            "apiVersion: kpatrol.dev/v1\nkind: SqlCheck\nmetadata: {{name: s}}\nspec:\n  pressure: {{qps: 20, duration: 500ms, timeout: 2s}}\n  targets: [{{url: \"postgres://127.0.0.1:{}/postgres\", credentials: {{secret: db-creds}}}}]\n",
            pg.port
        ),
    )
    .await;
}
