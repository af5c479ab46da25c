//! The SQL mode against real servers from the distribution, each test starting its own on
//! loopback (own data directory, own port, stopped when the test ends): PostgreSQL (pooled
//! and fresh connections, a wrong password, a closed port, a slow query cut by the timeout,
//! a query error, connections terminated under the round, TLS verified with the right and a
//! wrong CA) and MariaDB (pooled and fresh, a wrong password); `kpatrol run` and
//! `kpatrol-probe sql` with their exit codes and the password in no output; bad tasks
//! through `kpatrol validate` with the exact messages; a Secret without its key.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kpatrol::judge::{Measure, Verdict};
use kpatrol::pressure::Stop;
use kpatrol::probe::Mounts;
use kpatrol::report::{RoundReport, TargetReport};
use support::sql::{PASSWORD, mariadb, postgres, psql, write_credentials};
use support::{Pki, closed_port, probe_round, task_file};

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");
/// A mounts root whose Secret `db-creds` holds the user name and `password`.
fn mounts(dir: &Path, password: &str) -> Mounts {
    write_credentials(dir, password);
    Mounts::new(dir)
}

fn task(pressure: &str, targets: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: SqlCheck\nmetadata: {{name: db}}\nspec:\n  pressure: {pressure}\n  targets:\n{targets}"
    )
}

fn target(url: &str) -> String {
    format!("    - {{url: \"{url}\", credentials: {{secret: db-creds}}}}\n")
}

/// 20 attempts, a generous timeout (two cores run the rest of the suite beside it).
const POOL: &str = "{qps: 50, duration: 400ms, timeout: 5s}";
/// 20 attempts over a second, for TLS handshakes in a debug build.
const SLOWER: &str = "{qps: 20, duration: 1s, timeout: 5s}";
const FRESH: &str = "{qps: 50, duration: 400ms, timeout: 5s, connections: fresh}";

async fn round_in(dir: &Path, yaml: &str, password: &str) -> (RoundReport, Verdict) {
    let f = task_file(dir, "t.yaml", yaml);
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:#?}", ft.diagnostics);
    let plan = ft.plans.into_iter().next().expect("a task");
    assert_eq!(plan.mode.name(), "sql");
    kpatrol::round::execute(&plan, &mounts(dir, password), Stop::new())
        .await
        .expect("round runs")
}

async fn round(yaml: &str) -> (RoundReport, Verdict) {
    let dir = tempfile::tempdir().unwrap();
    round_in(dir.path(), yaml, PASSWORD).await
}

/// The report as JSON holds no password.
fn assert_no_password(r: &RoundReport) {
    let json = serde_json::to_string(r).unwrap();
    assert!(!json.contains(PASSWORD), "{json}");
}

/// A round of 20 slots that passed, allowing for slots left unsent at the window's end: on a
/// machine the whole suite shares (2 cores, debug builds, the control plane), a worker may
/// not run within the last slot's 20 ms before the window ends. Every other check passes,
/// at most a quarter of the slots stayed unsent, and every attempt that left was answered.
fn assert_passed_allowing_unsent(v: &Verdict, t: &TargetReport, how: &str) {
    let failed: Vec<_> = v.failed().filter(|c| c.measure != Measure::AllSent).collect();
    assert!(failed.is_empty(), "{how}: {failed:#?} {:?}", t.error_samples);
    assert_eq!(t.planned, Some(20), "{how}: {t:?}");
    assert!(t.sent >= 15 && t.sent + t.unsent == 20, "{how}: {t:?}");
    assert_eq!(t.answered, t.sent, "{how}: {t:?}");
    assert_eq!(t.codes.get("queried"), Some(&t.sent), "{how}: {t:?}");
    assert!(t.errors.is_empty(), "{how}: {:?}", t.errors);
}

#[tokio::test]
async fn postgres_passes_over_a_pool_and_over_fresh_connections() {
    let pg = postgres(None);
    let url = format!("postgres://127.0.0.1:{}/postgres", pg.port);
    for (pressure, how) in [(POOL, "pool"), (FRESH, "fresh")] {
        let (r, v) = round(&task(
            pressure,
            &format!("    - {{name: pg, url: \"{url}\", query: \"SELECT 1\", credentials: {{secret: db-creds}}}}\n"),
        ))
        .await;
        let t = &r.targets[0];
        assert_passed_allowing_unsent(&v, t, how);
        assert!(v.checks[0].threshold.ends_with("queried"), "{:?}", v.checks[0]);
        assert_eq!(r.mode, "sql");
        assert_no_password(&r);
    }
}

/// On a runtime of two threads a round at the maximum rate runs on two lanes, each with
/// connections of its own (what `pgbench -j 2` does): every query is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_at_the_maximum_rate_on_two_lanes() {
    assert_eq!(kpatrol::pressure::lanes(), 2);
    let pg = postgres(None);
    let url = format!("postgres://127.0.0.1:{}/postgres", pg.port);
    let (r, v) = round(&task(
        "{qps: max, duration: 500ms, timeout: 5s, maxInFlight: 4}",
        &target(&url),
    ))
    .await;
    assert!(v.passed(), "{:#?}", v.checks);
    let t = &r.targets[0];
    assert!(t.sent >= 50, "{t:?}");
    assert_eq!(t.answered, t.sent, "{t:?}");
    assert!(t.errors.is_empty(), "{:?}", t.errors);
}

#[tokio::test]
async fn postgres_a_wrong_password_is_auth_a_closed_port_refused_and_run_exits_1() {
    let pg = postgres(None);
    let dir = tempfile::tempdir().unwrap();
    let down = closed_port().await;
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(
            POOL,
            &format!(
                "    - {{name: pg, url: \"postgres://127.0.0.1:{}\", credentials: {{secret: db-creds}}}}\n    - {{name: down, url: \"postgresql://{down}/app\", credentials: {{secret: db-creds}}}}\n    - {{name: no-tls, url: \"postgres://127.0.0.1:{}\", credentials: {{secret: db-creds}}, tls: {{}}}}\n",
                pg.port, pg.port
            ),
        ),
    );
    let wrong = "not-the-Pa55word";
    mounts(dir.path(), wrong);
    let out = Command::new(KPATROL)
        .args(["run", "-o", "json", "--mounts"])
        .arg(dir.path())
        .arg(&f)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong), "{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["kind"].as_str(), r["mode"].as_str()),
        (Some("SqlCheck"), Some("sql"))
    );
    assert_eq!(r["verdict"], "fail");
    // every attempt sent failed as its kind; a loaded machine may leave a slot or two of
    // 20 unsent (each attempt logs in anew), which is counted, not lost
    let all_failed_as = |t: &serde_json::Value, kind: &str| {
        let (sent, unsent) = (t["sent"].as_u64().unwrap(), t["unsent"].as_u64().unwrap());
        assert!(sent >= 10 && sent + unsent == 20, "{t}");
        assert_eq!(t["errors"][kind].as_u64(), Some(sent), "{t}");
    };
    let pg_t = &r["targets"][0];
    all_failed_as(pg_t, "auth");
    let sample = pg_t["errorSamples"]["auth"].as_str().unwrap();
    assert!(
        sample.contains("password authentication failed for user \"kpatrol\" (SQLSTATE 28P01)"),
        "{sample}"
    );
    let down_t = &r["targets"][1];
    all_failed_as(down_t, "refused");
    // TLS asked of a server without it
    let plain = &r["targets"][2];
    all_failed_as(plain, "tls");
    assert!(
        plain["errorSamples"]["tls"]
            .as_str()
            .unwrap()
            .ends_with("connect: the server does not offer TLS (ssl = off)"),
        "{plain}"
    );
}

#[tokio::test]
async fn postgres_a_slow_query_times_out_and_a_bad_one_is_a_query_error() {
    let pg = postgres(None);
    let url = format!("postgres://127.0.0.1:{}/postgres", pg.port);
    let (r, v) = round(&task(
        // 1 s: time enough to connect and log in on a loaded machine, while pg_sleep(30) is not
        "{qps: 20, duration: 250ms, timeout: 1s}",
        &format!(
            "    - {{name: slow, url: \"{url}\", query: \"SELECT pg_sleep(30)\", credentials: {{secret: db-creds}}}}\n    - {{name: typo, url: \"{url}\", query: \"SELEC 1\", credentials: {{secret: db-creds}}}}\n"
        ),
    ))
    .await;
    assert!(!v.passed());
    let (slow, typo) = (&r.targets[0], &r.targets[1]);
    assert_eq!(slow.answered, 0, "{slow:?}");
    assert_eq!(slow.errors.get("timeout"), Some(&slow.sent), "{:?}", slow.errors);
    assert_eq!(
        slow.error_samples["timeout"],
        format!("127.0.0.1:{}: query: no answer within 1s", pg.port)
    );
    assert_eq!(typo.errors.get("query"), Some(&typo.sent), "{:?}", typo.errors);
    assert!(
        typo.error_samples["query"].contains("syntax error at or near \"SELEC\" (SQLSTATE 42601)"),
        "{:?}",
        typo.error_samples
    );
    // the queries the timeout cut were cancelled: none sleeps on (they would for 30 s)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sleeping: i64 = psql(
            pg.port,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
        )
        .await
        .trim()
        .parse()
        .unwrap();
        if sleeping == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sleeping} queries still run 10 s after the round"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a condition, bounded
    }
}

#[tokio::test]
async fn postgres_terminated_connections_are_reset_and_the_pool_recovers() {
    let pg = postgres(None);
    let url = format!("postgres://127.0.0.1:{}/postgres", pg.port);
    let yaml = task(
        "{qps: 50, duration: 2s, timeout: 5s, maxInFlight: 4}",
        &format!("    - {{name: pg, url: \"{url}\", credentials: {{secret: db-creds}}}}\n"),
    );
    // psql terminates the round's connections twice while it runs: first those it finds,
    // then the ones the pool opened instead (each found by polling, bounded)
    let port = pg.port;
    let admin = tokio::spawn(async move {
        let mut gone: Vec<String> = Vec::new();
        for _ in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let rows = psql(
                    port,
                    &format!(
                        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kpatrol' AND pid NOT IN ({})",
                        if gone.is_empty() { "0".to_string() } else { gone.join(",") }
                    ),
                )
                .await;
                let killed: Vec<String> = rows
                    .lines()
                    .filter_map(|l| l.strip_suffix("|t"))
                    .map(String::from)
                    .collect();
                if !killed.is_empty() {
                    gone.extend(killed);
                    break;
                }
                assert!(Instant::now() < deadline, "the round opened no connection to terminate");
                tokio::time::sleep(Duration::from_millis(20)).await; // polling a condition, bounded
            }
        }
        gone.len()
    });
    let (r, v) = round(&yaml).await;
    let killed = admin.await.unwrap();
    assert!(killed >= 1, "no connection was terminated");
    let t = &r.targets[0];
    let reset = t.errors.get("reset").copied().unwrap_or(0);
    assert!(reset >= 1, "{:?} ({killed} terminated)", t.errors);
    assert_eq!(t.answered + reset, t.sent, "{t:?}");
    // the pool opened new connections: all but the attempts on killed ones answered
    assert!(t.answered >= t.sent - killed as u64, "{t:?} ({killed} terminated)");
    assert!(!v.passed(), "a reset fails the default success rate");
}

#[tokio::test]
async fn postgres_tls_verifies_the_server_with_its_ca() {
    let pki = Pki::new();
    let pg = postgres(Some(&pki));
    let url = format!("postgres://127.0.0.1:{}/postgres", pg.port);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&pki.ca, dir.path().join("ca.crt")).unwrap();
    std::fs::copy(&pki.other_ca, dir.path().join("other.crt")).unwrap();
    // the CA from a Secret, as a pod has it
    let tls = dir.path().join("secrets/db-tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&pki.ca, tls.join("ca.crt")).unwrap();
    let (r, v) = round_in(
        dir.path(),
        &task(
            SLOWER,
            &format!(
                "    - {{name: ca, url: \"{url}\", credentials: {{secret: db-creds}}, tls: {{ca: ca.crt}}}}\n    - {{name: secret, url: \"{url}\", credentials: {{secret: db-creds}}, tls: {{secret: db-tls}}}}\n    - {{name: wrong-ca, url: \"{url}\", credentials: {{secret: db-creds}}, tls: {{ca: other.crt}}}}\n"
            ),
        ),
        PASSWORD,
    )
    .await;
    assert!(!v.passed());
    // TLS handshakes in a debug build on a loaded machine may leave the round's last slot
    // unsent: every attempt that left must have its answer (or its error)
    for t in &r.targets[..2] {
        assert!(t.sent >= 15 && t.sent + t.unsent == 20, "{t:?}");
        assert_eq!(t.codes.get("queried"), Some(&t.sent), "{t:?}");
        assert!(t.errors.is_empty(), "{t:?}");
    }
    let wrong = &r.targets[2];
    assert!(wrong.sent >= 15, "{wrong:?}");
    assert_eq!(wrong.errors.get("tls"), Some(&wrong.sent), "{:?}", wrong.errors);
    assert!(
        wrong.error_samples["tls"].contains("certificate"),
        "{:?}",
        wrong.error_samples
    );
    assert_no_password(&r);
}

#[tokio::test]
async fn mariadb_passes_over_a_pool_and_fresh_connections_and_a_wrong_password_is_auth() {
    let db = mariadb();
    for (scheme, pressure, how) in [("mysql", POOL, "pool"), ("mariadb", FRESH, "fresh")] {
        let (r, v) = round(&task(
            pressure,
            &target(&format!("{scheme}://127.0.0.1:{}/mysql", db.port)),
        ))
        .await;
        assert_passed_allowing_unsent(&v, &r.targets[0], how);
        assert_no_password(&r);
    }
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-Pa55word";
    let (r, v) = round_in(
        dir.path(),
        &task(POOL, &target(&format!("mysql://127.0.0.1:{}", db.port))),
        wrong,
    )
    .await;
    assert!(!v.passed());
    let t = &r.targets[0];
    assert_eq!(t.errors.get("auth"), Some(&20), "{:?}", t.errors);
    assert!(
        t.error_samples["auth"].contains("Access denied for user 'kpatrol'"),
        "{:?}",
        t.error_samples
    );
    assert!(!serde_json::to_string(&r).unwrap().contains(wrong));
}

#[tokio::test]
async fn probe_sql_runs_a_round_and_a_secret_without_its_key_cannot_run() {
    let pg = postgres(None);
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(POOL, &target(&format!("postgres://127.0.0.1:{}/postgres", pg.port))),
    );
    mounts(dir.path(), PASSWORD);
    let log = dir.path().join("log");
    // the probe reads its mounts from KPATROL_MOUNTS as a pod sets them
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpatrol-probe"))
        .args(["sql", "--task"])
        .arg(&f)
        .arg("--termination-log")
        .arg(&log)
        .env("KPATROL_MOUNTS", dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], "sql");
    assert_eq!(r["targets"][0]["codes"]["queried"], 20);
    let brief: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(brief["verdict"], "pass");
    // without its mounts, the probe cannot read the Secret: exit 2, naming the key
    let out = probe_round("sql", &f, &log).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key `username` of Secret db-creds"), "{err}");
    // a Secret without the password key
    std::fs::remove_file(dir.path().join("secrets/db-creds/password")).unwrap();
    let out = Command::new(KPATROL)
        .args(["run", "--mounts"])
        .arg(dir.path())
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot read the password (key `password` of Secret db-creds) {}",
            dir.path().join("secrets/db-creds/password").display()
        )),
        "{err}"
    );
}

#[test]
fn bad_sql_tasks_name_the_file_line_field_and_what_is_allowed() {
    const URL: &str = "(allowed: postgres://HOST[:PORT][/DATABASE] (or postgresql://), mysql://HOST[:PORT][/DATABASE] (or mariadb://), port 1–65535 (default 5432, 3306); credentials in `credentials: {secret: NAME}`)";
    let cases: Vec<(&str, String)> = vec![
        (
            "    - {url: \"redis://db:6379\", credentials: {secret: c}}\n",
            format!("t.yaml:7:13: spec.targets[0].url: unknown scheme `redis` {URL}"),
        ),
        (
            "    - {url: \"postgress://db\", credentials: {secret: c}}\n",
            format!("t.yaml:7:13: spec.targets[0].url: unknown scheme `postgress` (did you mean `postgres`?) {URL}"),
        ),
        (
            "    - {url: \"postgres://db:70000/app\", credentials: {secret: c}}\n",
            format!("t.yaml:7:13: spec.targets[0].url: port 70000 is out of range {URL}"),
        ),
        (
            "    - {url: \"mysql://root:hunter2@db/app\", credentials: {secret: c}}\n",
            format!(
                "t.yaml:7:13: spec.targets[0].url: the URL holds a password: credentials come from a Secret (`credentials: {{secret: NAME}}`), never from the task {URL}"
            ),
        ),
        (
            "    - {url: \"postgres://db/app\"}\n",
            "t.yaml:7:7: spec.targets[0].credentials: required field is missing".into(),
        ),
        (
            "    - {url: \"postgres://db/app\", credentials: {}}\n",
            "t.yaml:7:47: spec.targets[0].credentials.secret: required field is missing".into(),
        ),
        (
            "    - {url: \"postgres://db/app\", credentials: {secret: c, name: c}}\n",
            "t.yaml:7:59: spec.targets[0].credentials.name: unknown field (allowed: passwordKey, secret, usernameKey)".into(),
        ),
        (
            "    - {url: \"postgres://db/app\", credentials: {secret: c}, query: \"\"}\n",
            "t.yaml:7:67: spec.targets[0].query: the query is empty (allowed: an SQL statement, e.g. SELECT 1 (the default))".into(),
        ),
        (
            "    - {url: \"postgres://db/app\", credentials: {secret: c}, qurey: x}\n",
            "t.yaml:7:60: spec.targets[0].qurey: unknown field (did you mean `query`?) (allowed: credentials, expect, name, query, tls, url)".into(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (targets, want) in cases {
        let f = task_file(dir.path(), "t.yaml", &task(POOL, targets));
        let out = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{targets}");
        let text = String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", dir.path().display()), "");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("t.yaml:")).collect();
        assert_eq!(errors, [want.as_str()], "{targets}");
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("hunter2"), "{all}");
        // nothing created, nothing written: the folder holds the task alone
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn a_sql_task_renders_with_its_secrets_and_no_api_access() {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: SqlCheck\nmetadata: {name: db}\nspec:\n  schedule: \"@every 10m\"\n  targets:\n    - {url: \"postgres://db.example/app\", credentials: {secret: db-creds}, tls: {secret: db-tls}}\n    - {url: \"mysql://127.0.0.1\", credentials: {secret: db-creds}}\n",
    );
    let ft = kpatrol::plan::load_file(&f).unwrap();
    let errors: Vec<_> = ft
        .diagnostics
        .iter()
        .filter(|d| d.severity == kpatrol::diag::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let r = kpatrol::render::render(&ft.plans, &Default::default()).expect("renders");
    let text = &r.files["kpatrol-db.yaml"];
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(kinds, ["ConfigMap", "CronJob"], "{text}");
    assert!(text.contains("- sql\n"), "the probe's mode: {text}");
    assert!(text.contains("automountServiceAccountToken: false"), "{text}");
    assert_eq!(text.matches("secretName: db-creds").count(), 1, "{text}");
    assert_eq!(text.matches("secretName: db-tls").count(), 1, "{text}");
    // a loopback target reaches the pod itself: warned
    let out = Command::new(KPATROL).arg("render").arg(&f).output().unwrap();
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        warnings
            .contains(":7:5: warning: spec.targets: target 127.0.0.1 is loopback: in a pod it reaches the pod itself"),
        "at the targets: {warnings}"
    );
}
