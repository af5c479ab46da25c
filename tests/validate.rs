//! `kpatrol validate` and the loader behind it: broken task files (native `HttpCheck` and
//! kdoctor kinds) with the exact `file:line:col: field.path: message` they produce, YAML
//! syntax errors, named files that do not exist, the binary's exit codes, and garbage
//! that must never make the loader panic.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kpatrol::diag::{Diagnostic, Severity};
use kpatrol::plan::{FileTasks, load_str};
use kpatrol::task::{LoadError, check_files};

// ---------------------------------------------------------------------------------------
// helpers

fn load(text: &str) -> Result<FileTasks, LoadError> {
    load_str(Path::new("t.yaml"), text)
}

fn loaded(text: &str) -> FileTasks {
    match load(text) {
        Ok(ft) => ft,
        Err(e) => panic!("unexpected load error: {e}\n--- text ---\n{text}"),
    }
}

fn lines(diags: &[Diagnostic], severity: Severity) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| d.to_string())
        .collect()
}

fn errors(text: &str) -> Vec<String> {
    lines(&loaded(text).diagnostics, Severity::Error)
}

fn warnings(text: &str) -> Vec<String> {
    lines(&loaded(text).diagnostics, Severity::Warning)
}

/// Every expected line is the prefix of one error, and there are exactly as many errors.
fn check(name: &str, text: &str, expected: &[&str]) -> Result<(), String> {
    let got = errors(text);
    let mut problems = Vec::new();
    for e in expected {
        if !got.iter().any(|g| g.starts_with(e)) {
            problems.push(format!("  missing: {e}"));
        }
    }
    if got.len() != expected.len() {
        problems.push(format!("  expected {} error(s), got {}", expected.len(), got.len()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "case `{name}`:\n{}\n  got:\n    {}\n--- text ---\n{text}",
            problems.join("\n"),
            got.join("\n    ")
        ))
    }
}

fn run_table(cases: &[(&str, String, Vec<&str>)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, text, exp)| check(name, text, exp).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn assert_valid(text: &str) {
    let ft = loaded(text);
    let errs = lines(&ft.diagnostics, Severity::Error);
    assert!(
        errs.is_empty(),
        "unexpected errors:\n{}\n--- text ---\n{text}",
        errs.join("\n")
    );
    assert_eq!(ft.plans.len(), 1, "one plan expected\n--- text ---\n{text}");
}

/// A native `HttpCheck` named `web`; `body` starts at line 6, indented under `spec:`.
fn native(body: &str) -> String {
    format!("apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\nspec:\n{body}")
}

/// A kdoctor task named `t1`; `body` starts at line 6, indented under `spec:`.
fn kd(kind: &str, body: &str) -> String {
    format!("apiVersion: kdoctor.io/v1beta1\nkind: {kind}\nmetadata:\n  name: t1\nspec:\n{body}")
}

/// kdoctor schedule block that passes kdoctor's own rules (line 6).
const SCHED: &str = "  schedule: {schedule: \"0 1\", roundTimeoutMinute: 1}\n";
/// A valid AppHttpHealthy target (line 7 after SCHED).
const AHH_TARGET: &str = "  target: {host: \"http://1.2.3.4/\", method: GET}\n";
/// A valid native target list.
const TARGETS: &str = "  targets: [{url: \"http://x/\"}]\n";

/// A valid Netdns whose target block (from line 9) is `target`.
fn netdns(target: &str) -> String {
    kd(
        "Netdns",
        &format!("{SCHED}  request: {{perRequestTimeoutInMS: 500}}\n  expect: {{}}\n  target:\n{target}"),
    )
}

const NATIVE_SCHEDULE_ALLOWED: &str = "(allowed: a 5-field cron expression such as \"*/10 * * * *\", @hourly, @daily, @weekly, @monthly, @yearly, \"@every 10m\", @once, or kdoctor's \"M N\" minutes)";

// ---------------------------------------------------------------------------------------
// sanity of the helpers

#[test]
fn baseline_files_are_valid() {
    assert_valid(&native(TARGETS));
    assert_valid(&kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}")));
    assert_valid(&kd("NetReach", SCHED));
    assert_valid(&netdns("    targetUser: {server: 10.0.0.10}\n"));
}

// ---------------------------------------------------------------------------------------
// kind and apiVersion

#[test]
fn kind_and_api_version() {
    let doc = |api: &str, kind: &str| format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: web\nspec: {{}}\n");
    run_table(&[
        (
            "misspelt native kind",
            doc("kpatrol.dev/v1", "HttpChek"),
            vec![
                "t.yaml:2:7: kind: unknown kind `HttpChek` for apiVersion kpatrol.dev/v1 (did you mean `HttpCheck`?) (allowed: HttpCheck, DnsCheck, Mesh, TcpCheck, DiskCheck, SqlCheck)",
            ],
        ),
        (
            "kdoctor kind with the docs' spelling",
            doc("kdoctor.io/v1beta1", "NetDns"),
            vec![
                "t.yaml:2:7: kind: unknown kind `NetDns` for apiVersion kdoctor.io/v1beta1 (did you mean `Netdns`?) (allowed: AppHttpHealthy, NetReach, Netdns)",
            ],
        ),
        (
            "misspelt kdoctor kind",
            doc("kdoctor.io/v1beta1", "AppHttpHealty"),
            vec![
                "t.yaml:2:7: kind: unknown kind `AppHttpHealty` for apiVersion kdoctor.io/v1beta1 (did you mean `AppHttpHealthy`?)",
            ],
        ),
        (
            "kind with no resemblance",
            doc("kpatrol.dev/v1", "Pod"),
            vec![
                "t.yaml:2:7: kind: unknown kind `Pod` for apiVersion kpatrol.dev/v1 (allowed: HttpCheck, DnsCheck, Mesh, TcpCheck, DiskCheck, SqlCheck)",
            ],
        ),
        (
            "wrong apiVersion version",
            doc("kpatrol.dev/v2", "HttpCheck"),
            vec![
                "t.yaml:1:13: apiVersion: `kpatrol.dev/v2` is not allowed (did you mean `kpatrol.dev/v1`?) (allowed: kpatrol.dev/v1, kdoctor.io/v1beta1)",
            ],
        ),
        (
            "kdoctor apiVersion without beta",
            doc("kdoctor.io/v1", "NetReach"),
            vec!["t.yaml:1:13: apiVersion: `kdoctor.io/v1` is not allowed (did you mean `kdoctor.io/v1beta1`?)"],
        ),
        (
            "unrelated apiVersion",
            doc("apps/v1", "Deployment"),
            vec!["t.yaml:1:13: apiVersion: `apps/v1` is not allowed (allowed: kpatrol.dev/v1, kdoctor.io/v1beta1)"],
        ),
        (
            "apiVersion missing",
            "kind: HttpCheck\nmetadata:\n  name: web\nspec: {}\n".into(),
            vec!["t.yaml:1:1: apiVersion: required field is missing"],
        ),
        (
            "kind missing",
            "apiVersion: kpatrol.dev/v1\nmetadata:\n  name: web\nspec: {}\n".into(),
            vec!["t.yaml:1:1: kind: required field is missing"],
        ),
        (
            "document is not a mapping",
            "42\n".into(),
            vec!["t.yaml:1:1: (document): expected a mapping (a task), found integer"],
        ),
        (
            "document is a list",
            "- apiVersion: kpatrol.dev/v1\n".into(),
            vec!["t.yaml:1:1: (document): expected a mapping (a task), found list"],
        ),
    ]);
}

#[test]
fn kind_of_the_other_api_version_names_the_right_api_version() {
    let text = "apiVersion: kdoctor.io/v1beta1\nkind: HttpCheck\nmetadata:\n  name: web\nspec: {}\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        !errs[0].contains("did you mean `HttpCheck`"),
        "suggests the same name: {}",
        errs[0]
    );
    assert!(
        errs[0].contains("kpatrol.dev/v1"),
        "should point at kpatrol.dev/v1: {}",
        errs[0]
    );
}

#[test]
fn non_string_kind_still_reports_the_other_problems() {
    let text = "apiVersion: kpatrol.dev/v1\nkind: 42\nmetadata:\n  nam: web\nspek: {}\n";
    let errs = errors(text);
    for e in [
        "t.yaml:2:7: kind: expected a string, found integer",
        "t.yaml:4:3: metadata.nam: unknown field (did you mean `name`?)",
        "t.yaml:5:1: spek: unknown field (did you mean `spec`?)",
    ] {
        assert!(errs.iter().any(|g| g.starts_with(e)), "missing {e}\ngot: {errs:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// native HttpCheck

#[test]
fn native_wrong_types() {
    run_table(&[
        (
            "string where number",
            native(&format!("  pressure: {{qps: fast}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.pressure.qps: expected a number or `max`, found string (allowed: above 0 and at most 1000000, or `max`)"],
        ),
        (
            "list where mapping",
            native(&format!("  pressure: [1]\n{TARGETS}")),
            vec!["t.yaml:6:13: spec.pressure: expected a mapping, found list"],
        ),
        (
            "mapping where list",
            native("  targets: {url: \"http://x/\"}\n"),
            vec!["t.yaml:6:12: spec.targets: expected a list, found mapping"],
        ),
        (
            "string where integer",
            native(&format!("  agents: {{count: \"3\"}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.agents.count: expected an integer, found string"],
        ),
        (
            "number where duration",
            native(&format!("  pressure: {{duration: 10}}\n{TARGETS}")),
            vec!["t.yaml:6:24: spec.pressure.duration: a duration needs a unit (allowed: a number with ms, s, m or h, such as 500ms, 10s, 2m, 1h30m)"],
        ),
        (
            "malformed duration",
            native(&format!("  pressure: {{timeout: 10sec}}\n{TARGETS}")),
            vec!["t.yaml:6:23: spec.pressure.timeout: `10sec` is not a duration"],
        ),
        (
            "string where boolean",
            native(&format!("  expect: {{allSent: \"yes\"}}\n{TARGETS}")),
            vec!["t.yaml:6:21: spec.expect.allSent: expected true or false, found string"],
        ),
        (
            "YAML 1.1 yes is a string",
            native(&format!("  agents: {{hostNetwork: yes}}\n{TARGETS}")),
            vec!["t.yaml:6:25: spec.agents.hostNetwork: expected true or false, found string"],
        ),
        (
            "integer where string",
            native("  targets: [{url: 42}]\n"),
            vec!["t.yaml:6:19: spec.targets[0].url: expected a string, found integer"],
        ),
        (
            "schedule as a number",
            native(&format!("  schedule: 5\n{TARGETS}")),
            vec!["t.yaml:6:13: spec.schedule: expected a string, found integer"],
        ),
        (
            "spec as a list",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\nspec: [1]\n".into(),
            vec!["t.yaml:5:7: spec: expected a mapping, found list"],
        ),
        (
            "metadata as a string",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: web\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:3:11: metadata: expected a mapping, found string"],
        ),
        (
            "labels as a list",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n  labels: [a]\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:5:11: metadata.labels: expected a mapping of strings, found list"],
        ),
    ]);
}

#[test]
fn native_missing_fields() {
    run_table(&[
        (
            "metadata.name",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  labels: {a: b}\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:4:3: metadata.name: required field is missing"],
        ),
        (
            "metadata.name null",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: ~\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:4:9: metadata.name: required field is missing"],
        ),
        (
            "metadata",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:1:1: metadata: required field is missing"],
        ),
        (
            "spec",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n".into(),
            vec!["t.yaml:1:1: spec: required field is missing"],
        ),
        (
            "spec.targets in an empty spec",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\nspec: {}\n".into(),
            vec!["t.yaml:5:7: spec.targets: required field is missing"],
        ),
        (
            "spec.targets",
            native("  schedule: \"@once\"\n"),
            vec!["t.yaml:6:3: spec.targets: required field is missing"],
        ),
        (
            "spec.targets empty",
            native("  targets: []\n"),
            vec!["t.yaml:6:12: spec.targets: at least one target is needed"],
        ),
        (
            "targets[0].url",
            native("  targets:\n  - method: GET\n"),
            vec!["t.yaml:7:5: spec.targets[0].url: required field is missing"],
        ),
        (
            "header secret without key",
            native("  targets:\n  - url: \"http://x/\"\n    headers: {Authorization: {secret: s}}\n"),
            vec!["t.yaml:8:30: spec.targets[0].headers.Authorization.key: required field is missing"],
        ),
    ]);
}

#[test]
fn native_qps_and_round_timeout() {
    run_table(&[
        (
            "qps 0",
            native(&format!("  pressure: {{qps: 0}}\n{TARGETS}")),
            vec![
                "t.yaml:6:19: spec.pressure.qps: qps 0 is out of range (allowed: above 0 and at most 1000000, or `max`)",
            ],
        ),
        (
            "qps negative",
            native(&format!("  pressure: {{qps: -3}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.pressure.qps: qps -3 is out of range"],
        ),
        (
            "qps over the native maximum",
            native(&format!("  pressure: {{qps: 1000001}}\n{TARGETS}")),
            vec![
                "t.yaml:6:19: spec.pressure.qps: qps 1000001 is out of range (allowed: above 0 and at most 1000000, or `max`)",
            ],
        ),
        (
            "qps infinite",
            native(&format!("  pressure: {{qps: .inf}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.pressure.qps: "],
        ),
        (
            "qps NaN",
            native(&format!("  pressure: {{qps: .nan}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.pressure.qps: "],
        ),
        (
            "roundTimeout shorter than duration + timeout",
            native(&format!(
                "  roundTimeout: 10s\n  pressure: {{duration: 10s, timeout: 2s}}\n{TARGETS}"
            )),
            vec![
                "t.yaml:6:17: spec.roundTimeout: round timeout 10s is shorter than pressure.duration + pressure.timeout = 12s (allowed: at least 12s)",
            ],
        ),
        (
            "roundTimeout shorter than the default pressure (10s + 1s)",
            native(&format!("  roundTimeout: 10s\n{TARGETS}")),
            vec![
                "t.yaml:6:17: spec.roundTimeout: round timeout 10s is shorter than pressure.duration + pressure.timeout = 11s",
            ],
        ),
        (
            "timeout zero",
            native(&format!("  pressure: {{timeout: 0s}}\n{TARGETS}")),
            vec!["t.yaml:6:23: spec.pressure.timeout: 0s is out of range (allowed: 1ms to 10m)"],
        ),
        (
            "duration over a day",
            native(&format!("  pressure: {{duration: 25h}}\n{TARGETS}")),
            vec!["t.yaml:6:24: spec.pressure.duration: 25h is out of range (allowed: 1ms to 24h)"],
        ),
        (
            "maxInFlight zero",
            native(&format!("  pressure: {{maxInFlight: 0}}\n{TARGETS}")),
            vec!["t.yaml:6:27: spec.pressure.maxInFlight: 0 is out of range (allowed: 1–65536)"],
        ),
        (
            "connections unknown",
            native(&format!("  pressure: {{connections: fresch}}\n{TARGETS}")),
            vec![
                "t.yaml:6:27: spec.pressure.connections: `fresch` is not allowed (did you mean `fresh`?) (allowed: reuse, fresh)",
            ],
        ),
    ]);
    // The boundaries themselves are fine.
    assert_valid(&native(&format!("  pressure: {{qps: 1000000}}\n{TARGETS}")));
    assert_valid(&native(&format!("  pressure: {{qps: 0.5}}\n{TARGETS}")));
    assert_valid(&native(&format!("  pressure: {{qps: max}}\n{TARGETS}")));
    assert_valid(&native(&format!("  roundTimeout: 11s\n{TARGETS}")));
}

#[test]
fn native_schedules() {
    let sched = |s: &str| native(&format!("  schedule: \"{s}\"\n{TARGETS}"));
    let full = format!(
        "t.yaml:6:13: spec.schedule: `0 0 L * *` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse {NATIVE_SCHEDULE_ALLOWED}"
    );
    run_table(&[
        ("L", sched("0 0 L * *"), vec![full.as_str()]),
        (
            "#",
            sched("0 0 * * 1#2"),
            vec![
                "t.yaml:6:13: spec.schedule: `0 0 * * 1#2` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse",
            ],
        ),
        (
            "W",
            sched("0 0 15W * *"),
            vec![
                "t.yaml:6:13: spec.schedule: `0 0 15W * *` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse",
            ],
        ),
        (
            "6 fields (seconds)",
            sched("0 0 0 * * *"),
            vec!["t.yaml:6:13: spec.schedule: `0 0 0 * * *` has 6 fields; a cron expression has 5"],
        ),
        (
            "3 fields",
            sched("1 2 3"),
            vec!["t.yaml:6:13: spec.schedule: `1 2 3` has 3 fields; a cron expression has 5"],
        ),
        (
            "1 field",
            sched("hourly"),
            vec!["t.yaml:6:13: spec.schedule: `hourly` has 1 fields; a cron expression has 5"],
        ),
        (
            "minute 61",
            sched("61 * * * *"),
            vec!["t.yaml:6:13: spec.schedule: `61 * * * *` is not a valid cron expression: "],
        ),
        (
            "hour 25",
            sched("0 25 * * *"),
            vec!["t.yaml:6:13: spec.schedule: `0 25 * * *` is not a valid cron expression: "],
        ),
        (
            "day 32",
            sched("* * 32 * *"),
            vec!["t.yaml:6:13: spec.schedule: `* * 32 * *` is not a valid cron expression: "],
        ),
        (
            "month 13",
            sched("* * * 13 *"),
            vec!["t.yaml:6:13: spec.schedule: `* * * 13 *` is not a valid cron expression: "],
        ),
        (
            "weekday 8",
            sched("* * * * 8"),
            vec!["t.yaml:6:13: spec.schedule: `* * * * 8` is not a valid cron expression: "],
        ),
        (
            "step 0",
            sched("*/0 * * * *"),
            vec!["t.yaml:6:13: spec.schedule: `*/0 * * * *` is not a valid cron expression: "],
        ),
        (
            "reversed range",
            sched("5-1 * * * *"),
            vec!["t.yaml:6:13: spec.schedule: `5-1 * * * *` is not a valid cron expression: "],
        ),
        (
            "letters",
            sched("a b c d e"),
            vec!["t.yaml:6:13: spec.schedule: `a b c d e` is not a valid cron expression: "],
        ),
        (
            "@every without unit",
            sched("@every 10"),
            vec!["t.yaml:6:13: spec.schedule: `10` after @every is not a duration"],
        ),
        (
            "@every under a minute",
            sched("@every 30s"),
            vec!["t.yaml:6:13: spec.schedule: @every 30s is shorter than a minute, the smallest CronJob interval"],
        ),
        (
            "@every alone",
            sched("@every"),
            vec!["t.yaml:6:13: spec.schedule: `` after @every is not a duration"],
        ),
        (
            "@every bad unit",
            sched("@every 5x"),
            vec!["t.yaml:6:13: spec.schedule: `5x` after @every is not a duration"],
        ),
        (
            "@every negative",
            sched("@every -5m"),
            vec!["t.yaml:6:13: spec.schedule: `-5m` after @every is not a duration"],
        ),
        (
            "@every with a space inside",
            sched("@every 1 m"),
            vec!["t.yaml:6:13: spec.schedule: `1 m` after @every is not a duration"],
        ),
        (
            "@everyday",
            sched("@everyday"),
            vec!["t.yaml:6:13: spec.schedule: `day` after @every is not a duration"],
        ),
        (
            "unknown macro",
            sched("@sometimes"),
            vec!["t.yaml:6:13: spec.schedule: unknown schedule macro `@sometimes`"],
        ),
        (
            "M N with N = 0",
            sched("2 0"),
            vec!["t.yaml:6:13: spec.schedule: the interval N in \"M N\" must be at least 1 minute"],
        ),
        (
            "M N not numbers",
            sched("x 1"),
            vec!["t.yaml:6:13: spec.schedule: `x` is not a whole number of minutes"],
        ),
        (
            "rounds 0",
            native(&format!("  schedule: \"@hourly\"\n  rounds: 0\n{TARGETS}")),
            vec!["t.yaml:7:11: spec.rounds: 0 rounds would never run (allowed: -1 (forever) or a number ≥ 1)"],
        ),
        (
            "rounds -2",
            native(&format!("  schedule: \"@hourly\"\n  rounds: -2\n{TARGETS}")),
            vec!["t.yaml:7:11: spec.rounds: -2 rounds would never run"],
        ),
        (
            "@once with several rounds",
            native(&format!("  schedule: \"@once\"\n  rounds: 3\n{TARGETS}")),
            vec!["t.yaml:7:11: spec.rounds: @once runs one round, not 3 (allowed: 1, or a repeating schedule)"],
        ),
    ]);
    for ok in [
        "*/10 * * * *",
        "0 9 * * MON-FRI",
        "0 0 1 1 *",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
        "@every 1m",
        "@every 15m",
        "@every 6h",
        "@every 24h",
        "@once",
        "0 1",
        "5 60",
    ] {
        assert_valid(&sched(ok));
    }
}

#[test]
fn intervals_without_a_cronjob_equivalent_are_refused() {
    for bad in ["@every 1h30m", "@every 7m", "@every 5h", "0 7", "0 90"] {
        let errs = errors(&native(&format!("  schedule: \"{bad}\"\n{TARGETS}")));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(
            errs[0].contains("has no CronJob equivalent")
                && errs[0].contains("allowed: intervals a CronJob can repeat evenly"),
            "{}",
            errs[0]
        );
    }
}

#[test]
fn cron_day_and_month_names_with_l_or_w_are_accepted() {
    for ok in ["0 9 * * WED", "0 9 * * MON,WED,FRI", "0 0 1 JUL *", "0 0 1 APR-JUL *"] {
        assert_valid(&native(&format!("  schedule: \"{ok}\"\n{TARGETS}")));
        assert_valid(&kd(
            "AppHttpHealthy",
            &format!("  schedule: {{schedule: \"{ok}\", roundTimeoutMinute: 1}}\n{AHH_TARGET}"),
        ));
    }
}

#[test]
fn cron_weekday_7_is_refused_like_kubernetes() {
    let errs = errors(&native(&format!("  schedule: \"0 0 * * 7\"\n{TARGETS}")));
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn cron_time_zone_prefix_gets_its_own_message() {
    let errs = errors(&native(&format!("  schedule: \"TZ=UTC 0 * * * *\"\n{TARGETS}")));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("time zone"), "{}", errs[0]);
}

#[test]
fn native_targets() {
    let t = |rest: &str| native(&format!("  targets:\n  - url: \"http://x/\"\n{rest}"));
    run_table(&[
        (
            "header without a colon (list form)",
            t("    headers: [\"NoColon\"]\n"),
            vec!["t.yaml:8:15: spec.targets[0].headers[0]: header `NoColon` has no colon (allowed: \"Name: value\")"],
        ),
        (
            "header name with a space (mapping form)",
            t("    headers: {\"Bad Name\": x}\n"),
            vec!["t.yaml:8:15: spec.targets[0].headers.Bad Name: `Bad Name` is not a valid header name"],
        ),
        (
            "headers as a string",
            t("    headers: \"A: b\"\n"),
            vec!["t.yaml:8:14: spec.targets[0].headers: expected a mapping of headers, found string"],
        ),
        (
            "invalid URL",
            native("  targets:\n  - url: \"http//x\"\n"),
            vec![
                "t.yaml:7:10: spec.targets[0].url: `http//x` is not a valid URL: relative URL without a base (allowed: http:// or https:// URLs with a host)",
            ],
        ),
        (
            "URL with another scheme",
            native("  targets:\n  - url: \"ftp://x/\"\n"),
            vec!["t.yaml:7:10: spec.targets[0].url: `ftp://x/` has scheme `ftp` or no host"],
        ),
        (
            "URL with a bad port",
            native("  targets:\n  - url: \"http://x:99999/\"\n"),
            vec!["t.yaml:7:10: spec.targets[0].url: `http://x:99999/` is not a valid URL: "],
        ),
        (
            "method TRACE",
            t("    method: TRACE\n"),
            vec![
                "t.yaml:8:13: spec.targets[0].method: `TRACE` is not allowed (allowed: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
            ],
        ),
        (
            "method CONNECT",
            t("    method: CONNECT\n"),
            vec!["t.yaml:8:13: spec.targets[0].method: `CONNECT` is not allowed"],
        ),
        (
            "method misspelt",
            t("    method: PSOT\n"),
            vec!["t.yaml:8:13: spec.targets[0].method: `PSOT` is not allowed (did you mean `POST`?)"],
        ),
        (
            "misspelt target field",
            t("    methd: GET\n"),
            vec!["t.yaml:8:5: spec.targets[0].methd: unknown field (did you mean `method`?)"],
        ),
        (
            "http version",
            t("    http: \"3\"\n"),
            vec!["t.yaml:8:11: spec.targets[0].http: `3` is not allowed (did you mean `2`?) (allowed: auto, 1.1, 2)"],
        ),
        (
            "TLS on plain http",
            t("    tls: {insecureSkipVerify: true}\n"),
            vec!["t.yaml:8:10: spec.targets[0].tls: TLS settings on a plain http:// URL (allowed: https:// URLs)"],
        ),
        (
            "followRedirects out of range",
            t("    followRedirects: 99\n"),
            vec![
                "t.yaml:8:22: spec.targets[0].followRedirects: not a redirect limit (allowed: true (up to 10), false, or 0–50)",
            ],
        ),
        (
            "body and bodyFile together",
            t("    body: x\n    bodyFile: b.json\n"),
            vec!["t.yaml:7:5: spec.targets[0]: `body`, `bodyFile` and `bodyFrom` exclude each other"],
        ),
        (
            "bodyFrom without key",
            t("    bodyFrom: {configMap: c}\n"),
            vec!["t.yaml:8:15: spec.targets[0].bodyFrom.key: required field is missing"],
        ),
        (
            "status code out of range",
            t("    expect: {status: [700]}\n"),
            vec![
                "t.yaml:8:23: spec.targets[0].expect.status[0]: not a status code (allowed: a status code 100–599, a class such as 2xx, or a range such as 200-204)",
            ],
        ),
        (
            "status range reversed",
            t("    expect: {status: [\"204-200\"]}\n"),
            vec!["t.yaml:8:23: spec.targets[0].expect.status[0]: not a status code"],
        ),
        (
            "success rate above 1",
            native(&format!("  expect: {{successRate: 2}}\n{TARGETS}")),
            vec!["t.yaml:6:25: spec.expect.successRate: 2 is not a ratio (allowed: 0.0–1.0, e.g. 0.999)"],
        ),
        (
            "latency misspelt",
            native(&format!("  expect: {{latency: {{p98: 1s}}}}\n{TARGETS}")),
            vec!["t.yaml:6:22: spec.expect.latency.p98: unknown field (did you mean `p90`?)"],
        ),
        (
            "duplicate target names",
            native("  targets:\n  - {name: a, url: \"http://x/\"}\n  - {name: a, url: \"http://y/\"}\n"),
            vec!["t.yaml:8:12: spec.targets[1].name: target name `a` is used twice"],
        ),
        (
            "client certificate without key",
            native("  targets:\n  - url: \"https://x/\"\n    tls: {cert: c.pem}\n"),
            vec!["t.yaml:8:10: spec.targets[0].tls: a client certificate needs both `cert` and `key`"],
        ),
        (
            "tls secret and files",
            native("  targets:\n  - url: \"https://x/\"\n    tls: {secret: s, ca: ca.pem}\n"),
            vec![
                "t.yaml:8:19: spec.targets[0].tls.secret: `secret` and files (`ca`, `cert`, `key`) exclude each other",
            ],
        ),
        (
            "agents count and perNode",
            native(&format!("  agents: {{count: 2, perNode: {{}}}}\n{TARGETS}")),
            vec!["t.yaml:6:11: spec.agents: `count` and `perNode` exclude each other"],
        ),
        (
            "agents count 0",
            native(&format!("  agents: {{count: 0}}\n{TARGETS}")),
            vec!["t.yaml:6:19: spec.agents.count: 0 agents (allowed: 1–10000)"],
        ),
    ]);
}

#[test]
fn misspelt_fields_get_did_you_mean() {
    run_table(&[
        (
            "pressure.durration",
            native(&format!("  pressure: {{durration: 5s}}\n{TARGETS}")),
            vec!["t.yaml:6:14: spec.pressure.durration: unknown field (did you mean `duration`?) (allowed: connections, duration, maxInFlight, qps, timeout)"],
        ),
        (
            "spec.target for targets",
            native("  target: [{url: \"http://x/\"}]\n"),
            vec![
                "t.yaml:6:3: spec.target: unknown field (did you mean `targets`?)",
                "t.yaml:6:3: spec.targets: required field is missing",
            ],
        ),
        (
            "top-level metdata",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetdata:\n  name: web\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec![
                "t.yaml:1:1: metadata: required field is missing",
                "t.yaml:3:1: metdata: unknown field (did you mean `metadata`?)",
            ],
        ),
        (
            "metadata.nmae",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  nmae: web\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec![
                "t.yaml:4:3: metadata.name: required field is missing",
                "t.yaml:4:3: metadata.nmae: unknown field (did you mean `name`?)",
            ],
        ),
        (
            "kdoctor spec.schedul",
            kd("NetReach", "  schedul: {schedule: \"0 1\", roundTimeoutMinute: 1}\n"),
            vec![
                "t.yaml:6:3: spec.schedule: NetReach without spec.schedule",
                "t.yaml:6:3: spec.schedul: unknown field (did you mean `schedule`?)",
            ],
        ),
        (
            "kdoctor target.hots",
            kd("AppHttpHealthy", &format!("{SCHED}  target: {{hots: \"http://a.com/\", method: GET}}\n")),
            vec![
                "t.yaml:7:11: spec.target.host: required field is missing",
                "t.yaml:7:12: spec.target.hots: unknown field (did you mean `host`?)",
            ],
        ),
        (
            "kdoctor request.qsp",
            kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}  request: {{qsp: 5, perRequestTimeoutInMS: 500}}\n")),
            vec!["t.yaml:8:13: spec.request.qsp: unknown field (did you mean `qps`?)"],
        ),
        (
            "kdoctor expect.successrate",
            kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}  expect: {{successrate: 1}}\n")),
            vec!["t.yaml:8:12: spec.expect.successrate: unknown field (did you mean `successRate`?)"],
        ),
        (
            "kdoctor agentSpec.hostnetwork",
            kd("NetReach", &format!("{SCHED}  agentSpec: {{hostnetwork: true}}\n")),
            vec!["t.yaml:7:15: spec.agentSpec.hostnetwork: unknown field (did you mean `hostNetwork`?)"],
        ),
    ]);
}

#[test]
fn kubernetes_names() {
    let named = |api: &str, kind: &str, name: &str| {
        let spec = if api == "kpatrol.dev/v1" {
            "spec:\n  targets: [{url: \"http://x/\"}]\n".to_string()
        } else {
            format!("spec:\n{SCHED}")
        };
        format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{spec}")
    };
    let n = |name: &str| named("kpatrol.dev/v1", "HttpCheck", name);
    let k = |name: &str| named("kdoctor.io/v1beta1", "NetReach", name);
    let long = "a".repeat(47);
    run_table(&[
        ("upper case and underscore", n("Web_1"), vec!["t.yaml:4:9: metadata.name: `Web_1` is not a valid Kubernetes name: it contains 'W' (allowed: lower-case letters, digits and '-', starting with a letter, ending with a letter or digit, at most 46 characters (a CronJob adds 11 to its Jobs' names and an Indexed Job its pods' index, within Kubernetes' 63))"]),
        ("dot in a native name", n("a.b"), vec!["t.yaml:4:9: metadata.name: `a.b` is not a valid Kubernetes name: it contains '.'"]),
        ("starts with a digit", n("1web"), vec!["t.yaml:4:9: metadata.name: `1web` is not a valid Kubernetes name: it does not start with a letter"]),
        ("ends with a dash", n("web-"), vec!["t.yaml:4:9: metadata.name: `web-` is not a valid Kubernetes name: it ends with '-'"]),
        ("too long for a CronJob", n(&long), vec!["t.yaml:4:9: metadata.name: `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa` is not a valid Kubernetes name: it has 47 characters"]),
        ("empty", n("\"\""), vec!["t.yaml:4:9: metadata.name: `` is not a valid Kubernetes name: it is empty"]),
        ("number", n("42"), vec!["t.yaml:4:9: metadata.name: expected a string, found integer"]),
        ("kdoctor upper case", k("My_Task"), vec!["t.yaml:4:9: metadata.name: `My_Task` is not a valid Kubernetes name: it contains 'M' (allowed: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"]),
        ("kdoctor empty label", k("a..b"), vec!["t.yaml:4:9: metadata.name: `a..b` is not a valid Kubernetes name: part `` must start and end with a letter or digit"]),
        ("kdoctor label ending with a dash", k("a-.b"), vec!["t.yaml:4:9: metadata.name: `a-.b` is not a valid Kubernetes name: part `a-` must start and end with a letter or digit"]),
        (
            "bad namespace",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n  namespace: Team_A\nspec:\n  targets: [{url: \"http://x/\"}]\n".into(),
            vec!["t.yaml:5:14: metadata.namespace: `Team_A` is not a valid namespace: it contains 'T' (allowed: a DNS-1123 label)"],
        ),
    ]);
    // kdoctor names are DNS subdomains: dots and a leading digit are fine there.
    assert_valid(&k("1st.check"));
    assert_valid(&n(&"a".repeat(46)));
}

// ---------------------------------------------------------------------------------------
// kdoctor kinds

#[test]
fn kdoctor_app_http_healthy_target() {
    let ahh = |target: &str| kd("AppHttpHealthy", &format!("{SCHED}  target: {target}\n"));
    run_table(&[
        (
            "host missing",
            ahh("{method: GET}"),
            vec!["t.yaml:7:11: spec.target.host: required field is missing"],
        ),
        (
            "method missing",
            ahh("{host: \"http://a.com/\"}"),
            vec!["t.yaml:7:11: spec.target.method: required field is missing"],
        ),
        (
            "target missing",
            kd("AppHttpHealthy", SCHED),
            vec!["t.yaml:6:3: spec.target: required field is missing"],
        ),
        (
            "CONNECT",
            ahh("{host: \"http://a.com/\", method: CONNECT}"),
            vec![
                "t.yaml:7:43: spec.target.method: CONNECT opens a tunnel and has no answer to judge; kpatrol does not send it (allowed: GET, POST, PUT, DELETE, OPTIONS, PATCH, HEAD)",
            ],
        ),
        (
            "method misspelt",
            ahh("{host: \"http://a.com/\", method: GETT}"),
            vec![
                "t.yaml:7:43: spec.target.method: `GETT` is not allowed (did you mean `GET`?) (allowed: GET, POST, PUT, DELETE, CONNECT, OPTIONS, PATCH, HEAD)",
            ],
        ),
        (
            "lower-case method",
            ahh("{host: \"http://a.com/\", method: get}"),
            vec!["t.yaml:7:43: spec.target.method: `get` is not allowed (did you mean `GET`?)"],
        ),
        (
            "host that is no domain",
            ahh("{host: \"http://a.b/\", method: GET}"),
            vec![
                "t.yaml:7:18: spec.target.host: `a.b` is neither a domain name nor an IP address (allowed: http(s)://DOMAIN, IPv4 or [IPv6] with an optional port and path)",
            ],
        ),
        (
            "host with a digit top-level domain",
            ahh("{host: \"foo.c0m\", method: GET}"),
            vec!["t.yaml:7:18: spec.target.host: `foo.c0m` is neither a domain name nor an IP address"],
        ),
        (
            "invalid URL",
            ahh("{host: \"http://a b/\", method: GET}"),
            vec!["t.yaml:7:18: spec.target.host: `http://a b/` is not a valid URL: "],
        ),
        (
            "host as a number",
            ahh("{host: 42, method: GET}"),
            vec!["t.yaml:7:18: spec.target.host: expected a string, found integer"],
        ),
        (
            "header without a colon",
            ahh("{host: \"http://a.com/\", method: GET, header: [\"NoColon\"]}"),
            vec!["t.yaml:7:57: spec.target.header[0]: header `NoColon` has no colon (allowed: \"Name: value\")"],
        ),
        (
            "header with a bad name",
            ahh("{host: \"http://a.com/\", method: GET, header: [\"Bad Name: x\"]}"),
            vec!["t.yaml:7:57: spec.target.header[0]: `Bad Name` is not a valid header name"],
        ),
        (
            "header as a string",
            ahh("{host: \"http://a.com/\", method: GET, header: \"A: b\"}"),
            vec!["t.yaml:7:56: spec.target.header: expected a list, found string"],
        ),
        (
            "http2 as a string",
            ahh("{host: \"http://a.com/\", method: GET, http2: \"yes\"}"),
            vec!["t.yaml:7:55: spec.target.http2: expected true or false, found string"],
        ),
        (
            "bodyConfigmapName without namespace",
            ahh("{host: \"http://a.com/\", method: GET, bodyConfigmapName: b}"),
            vec!["t.yaml:7:67: spec.target.bodyConfigmapNamespace: required when bodyConfigmapName is set"],
        ),
        (
            "tlsSecretName without namespace",
            ahh("{host: \"https://a.com/\", method: GET, tlsSecretName: s}"),
            vec!["t.yaml:7:64: spec.target.tlsSecretNamespace: required when tlsSecretName is set"],
        ),
    ]);
}

#[test]
fn kdoctor_request_limits() {
    let req = |kind: &str, request: &str| {
        let target = match kind {
            "AppHttpHealthy" => AHH_TARGET,
            _ => "",
        };
        kd(kind, &format!("{SCHED}  request: {request}\n{target}"))
    };
    let dns = |request: &str| {
        kd(
            "Netdns",
            &format!("{SCHED}  request: {request}\n  expect: {{}}\n  target: {{}}\n"),
        )
    };
    run_table(&[
        (
            "AppHttpHealthy qps 100",
            req("AppHttpHealthy", "{qps: 100, perRequestTimeoutInMS: 500}"),
            vec![
                "t.yaml:7:18: spec.request.qps: AppHttpHealthy requires qps 100 within kdoctor's limit (allowed: 1–99 (kdoctor's chart limit; use a native kind for more))",
            ],
        ),
        (
            "NetReach qps 20",
            req("NetReach", "{qps: 20, perRequestTimeoutInMS: 500}"),
            vec![
                "t.yaml:7:18: spec.request.qps: NetReach requires qps 20 within kdoctor's limit (allowed: 1–19 (kdoctor's chart limit; use a native kind for more))",
            ],
        ),
        (
            "Netdns qps 100",
            dns("{qps: 100, perRequestTimeoutInMS: 500}"),
            vec![
                "t.yaml:7:18: spec.request.qps: Netdns requires qps 100 within kdoctor's limit (allowed: 1–99 (kdoctor's chart limit; use a native kind for more))",
            ],
        ),
        (
            "qps 0",
            req("AppHttpHealthy", "{qps: 0, perRequestTimeoutInMS: 500}"),
            vec!["t.yaml:7:18: spec.request.qps: AppHttpHealthy requires qps 0 within kdoctor's limit (allowed: 1–99"],
        ),
        (
            "qps negative",
            req("NetReach", "{qps: -1, perRequestTimeoutInMS: 500}"),
            vec!["t.yaml:7:18: spec.request.qps: NetReach requires qps -1 within kdoctor's limit (allowed: 1–19"],
        ),
        (
            "qps as a float",
            req("NetReach", "{qps: 1.5, perRequestTimeoutInMS: 500}"),
            vec!["t.yaml:7:18: spec.request.qps: expected an integer, found number"],
        ),
        (
            "durationInSecond longer than roundTimeoutMinute",
            req(
                "AppHttpHealthy",
                "{qps: 5, durationInSecond: 61, perRequestTimeoutInMS: 500}",
            ),
            vec![
                "t.yaml:7:39: spec.request.durationInSecond: 61 seconds does not fit the round timeout (1 min) (allowed: 1–60)",
            ],
        ),
        (
            "durationInSecond 0",
            req("NetReach", "{durationInSecond: 0, perRequestTimeoutInMS: 500}"),
            vec![
                "t.yaml:7:31: spec.request.durationInSecond: 0 seconds does not fit the round timeout (1 min) (allowed: 1–60)",
            ],
        ),
        (
            "durationInSecond as text",
            req("NetReach", "{durationInSecond: 2s, perRequestTimeoutInMS: 500}"),
            vec!["t.yaml:7:31: spec.request.durationInSecond: expected an integer, found string"],
        ),
        (
            "Netdns durationInSecond too long",
            dns("{durationInSecond: 61, perRequestTimeoutInMS: 500}"),
            vec![
                "t.yaml:7:31: spec.request.durationInSecond: 61 seconds does not fit the round timeout (1 min) (allowed: 1–60)",
            ],
        ),
        (
            "perRequestTimeoutInMS longer than the round",
            req("AppHttpHealthy", "{perRequestTimeoutInMS: 60001}"),
            vec![
                "t.yaml:7:36: spec.request.perRequestTimeoutInMS: 60001 ms does not fit the round timeout (1 min) (allowed: 1–60000)",
            ],
        ),
        (
            "perRequestTimeoutInMS 0",
            req("NetReach", "{perRequestTimeoutInMS: 0}"),
            vec!["t.yaml:7:36: spec.request.perRequestTimeoutInMS: 0 ms does not fit the round timeout (1 min)"],
        ),
        (
            "request as a list",
            req("NetReach", "[1]"),
            vec!["t.yaml:7:12: spec.request: expected a mapping, found list"],
        ),
        (
            "Netdns protocol",
            dns("{perRequestTimeoutInMS: 500, protocol: tls}"),
            vec!["t.yaml:7:51: spec.request.protocol: `tls` is not allowed (allowed: udp, tcp, tcp-tls)"],
        ),
        (
            "Netdns protocol misspelt",
            dns("{perRequestTimeoutInMS: 500, protocol: tpc}"),
            vec!["t.yaml:7:51: spec.request.protocol: `tpc` is not allowed (did you mean `tcp`?)"],
        ),
        (
            "Netdns empty domain",
            dns("{perRequestTimeoutInMS: 500, domain: \"\"}"),
            vec!["t.yaml:7:49: spec.request.domain: `` is not a valid host name: it is blank"],
        ),
        (
            "Netdns label longer than 63",
            dns(&format!(
                "{{perRequestTimeoutInMS: 500, domain: {}.com}}",
                "a".repeat(64)
            )),
            vec!["t.yaml:7:49: spec.request.domain: `aaaa"],
        ),
    ]);
    // kdoctor's largest accepted values: qps strictly below 20/100/100.
    assert_valid(&req("AppHttpHealthy", "{qps: 99, perRequestTimeoutInMS: 500}"));
    assert_valid(&req("NetReach", "{qps: 19, perRequestTimeoutInMS: 500}"));
    assert_valid(&req("NetReach", "{qps: 1, perRequestTimeoutInMS: 500}"));
    assert_valid(&kd(
        "Netdns",
        &format!("{SCHED}  request: {{qps: 99, perRequestTimeoutInMS: 500}}\n  expect: {{}}\n  target: {{}}\n"),
    ));
    // durationInSecond may use the whole round, and so may the request timeout.
    assert_valid(&req(
        "AppHttpHealthy",
        "{durationInSecond: 60, perRequestTimeoutInMS: 60000}",
    ));
}

#[test]
fn kdoctor_schedules() {
    let s = |block: &str| kd("NetReach", &format!("  schedule: {block}\n"));
    let sch = |text: &str| s(&format!("{{schedule: \"{text}\", roundTimeoutMinute: 1}}"));
    run_table(&[
        (
            "roundTimeoutMinute longer than the M N interval",
            s("{schedule: \"0 5\", roundTimeoutMinute: 10}"),
            vec![
                "t.yaml:6:51: spec.schedule.roundTimeoutMinute: round timeout of 10 minutes is longer than the schedule's interval of 5 minutes (kdoctor's rule; its default is 60) (allowed: 1–5)",
            ],
        ),
        (
            "default roundTimeoutMinute 60 with \"0 1\"",
            s("{schedule: \"0 1\"}"),
            vec![
                "t.yaml:6:13: spec.schedule.roundTimeoutMinute: round timeout of 60 minutes is longer than the schedule's interval of 1 minutes (kdoctor's rule; its default is 60) (allowed: 1–1)",
            ],
        ),
        (
            "schedule block missing (AppHttpHealthy)",
            kd("AppHttpHealthy", AHH_TARGET),
            vec![
                "t.yaml:6:3: spec.schedule: AppHttpHealthy without spec.schedule gets kdoctor's default \"0 1\" with roundTimeoutMinute 60, which kdoctor itself refuses (timeout longer than the interval) (allowed: a schedule block such as {schedule: \"0 1\", roundTimeoutMinute: 1, roundNumber: 1})",
            ],
        ),
        (
            "schedule block missing (NetReach, empty spec)",
            "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata:\n  name: t1\nspec: {}\n".into(),
            vec!["t.yaml:5:7: spec.schedule: NetReach without spec.schedule gets kdoctor's default"],
        ),
        (
            "schedule.schedule missing",
            s("{roundTimeoutMinute: 1}"),
            vec!["t.yaml:6:13: spec.schedule.schedule: required field is missing"],
        ),
        (
            "double space",
            sch("0  1"),
            vec![
                "t.yaml:6:24: spec.schedule.schedule: `0  1` has a doubled, leading or trailing space; kdoctor separates parts by single spaces (allowed: \"M N\" (start after M minutes, then every N minutes, N ≥ 1) or a 5-field cron expression, fields separated by single spaces)",
            ],
        ),
        (
            "tab",
            sch("0\\t1"),
            // the tab is echoed escaped: a diagnostic is one line
            vec!["t.yaml:6:24: spec.schedule.schedule: `0\\t1` has 1 space-separated parts; kdoctor takes two or five"],
        ),
        (
            "@every",
            sch("@every 1m"),
            vec!["t.yaml:6:24: spec.schedule.schedule: `@every` is not a whole number of minutes"],
        ),
        (
            "@hourly",
            sch("@hourly"),
            vec![
                "t.yaml:6:24: spec.schedule.schedule: `@hourly` has 1 space-separated parts; kdoctor takes two or five",
            ],
        ),
        (
            "6-field cron",
            sch("0 0 0 * * *"),
            vec![
                "t.yaml:6:24: spec.schedule.schedule: `0 0 0 * * *` has 6 space-separated parts; kdoctor takes two or five",
            ],
        ),
        (
            "negative M",
            sch("-1 1"),
            vec!["t.yaml:6:24: spec.schedule.schedule: `-1` is not a whole number of minutes"],
        ),
        (
            "N = 0",
            sch("0 0"),
            vec!["t.yaml:6:24: spec.schedule.schedule: the interval N in \"M N\" must be at least 1 minute"],
        ),
        (
            "cron L",
            sch("0 0 L * *"),
            vec![
                "t.yaml:6:24: spec.schedule.schedule: `0 0 L * *` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse",
            ],
        ),
        (
            "cron out of range",
            sch("61 * * * *"),
            vec!["t.yaml:6:24: spec.schedule.schedule: `61 * * * *` is not a valid cron expression: "],
        ),
        (
            "roundNumber 0",
            s("{schedule: \"*/5 * * * *\", roundNumber: 0}"),
            vec![
                "t.yaml:6:52: spec.schedule.roundNumber: 0 rounds would never run (allowed: -1 (forever) or a number ≥ 1)",
            ],
        ),
        (
            "roundNumber -2",
            s("{schedule: \"*/5 * * * *\", roundNumber: -2}"),
            vec!["t.yaml:6:52: spec.schedule.roundNumber: -2 rounds would never run"],
        ),
        (
            "roundTimeoutMinute 0",
            s("{schedule: \"*/5 * * * *\", roundTimeoutMinute: 0}"),
            vec!["t.yaml:6:59: spec.schedule.roundTimeoutMinute: 0 minutes (allowed: 1–525600)"],
        ),
    ]);
    // A cron schedule has no interval rule: the default 60 minutes is fine.
    assert_valid(&s("{schedule: \"*/5 * * * *\"}"));
    assert_valid(&s("{schedule: \"0 5\", roundTimeoutMinute: 5, roundNumber: -1}"));
}

#[test]
fn kdoctor_durations_must_fit_the_round_timeout_minutes() {
    // durationInSecond ≤ roundTimeoutMinute × 60 exactly at the boundary, for 2 minutes.
    let t = |d: i64| {
        kd(
            "NetReach",
            &format!(
                "  schedule: {{schedule: \"0 2\", roundTimeoutMinute: 2}}\n  request: {{durationInSecond: {d}, perRequestTimeoutInMS: 500}}\n"
            ),
        )
    };
    assert_valid(&t(120));
    assert_eq!(
        errors(&t(121)),
        vec![
            "t.yaml:7:31: spec.request.durationInSecond: 121 seconds does not fit the round timeout (2 min) (allowed: 1–120)"
        ]
    );
}

#[test]
fn kdoctor_netdns() {
    let nd = |body: &str| kd("Netdns", body);
    let req = "  request: {perRequestTimeoutInMS: 500}\n";
    let exp = "  expect: {}\n";
    let tgt = "  target: {}\n";
    run_table(&[
        (
            "everything missing",
            "apiVersion: kdoctor.io/v1beta1\nkind: Netdns\nmetadata:\n  name: t1\nspec: {}\n".into(),
            vec![
                "t.yaml:5:7: spec.schedule: required field is missing",
                "t.yaml:5:7: spec.request: required field is missing",
                "t.yaml:5:7: spec.expect: required field is missing",
                "t.yaml:5:7: spec.target: required field is missing",
            ],
        ),
        (
            "schedule missing",
            nd(&format!("{req}{exp}{tgt}")),
            vec!["t.yaml:6:3: spec.schedule: required field is missing"],
        ),
        (
            "request missing",
            nd(&format!("{SCHED}{exp}{tgt}")),
            vec!["t.yaml:6:3: spec.request: required field is missing"],
        ),
        (
            "expect missing",
            nd(&format!("{SCHED}{req}{tgt}")),
            vec!["t.yaml:6:3: spec.expect: required field is missing"],
        ),
        (
            "target missing",
            nd(&format!("{SCHED}{req}{exp}")),
            vec!["t.yaml:6:3: spec.target: required field is missing"],
        ),
        (
            "targetUser server is a name",
            netdns("    targetUser: {server: dns.google}\n"),
            vec![
                "t.yaml:10:26: spec.target.targetUser.server: `dns.google` is not an IP address (allowed: an IPv4 or IPv6 address (kdoctor does not resolve names here))",
            ],
        ),
        (
            "targetUser server with a port",
            netdns("    targetUser: {server: \"10.0.0.10:53\"}\n"),
            vec!["t.yaml:10:26: spec.target.targetUser.server: `10.0.0.10:53` is not an IP address"],
        ),
        (
            "targetUser server missing",
            netdns("    targetUser: {port: 53}\n"),
            vec!["t.yaml:10:17: spec.target.targetUser.server: required field is missing"],
        ),
        (
            "targetUser port out of range",
            netdns("    targetUser: {server: 10.0.0.10, port: 70000}\n"),
            vec!["t.yaml:10:43: spec.target.targetUser.port: port 70000 (allowed: 1–65535)"],
        ),
        (
            "targetUser and targetDns together",
            netdns("    targetUser: {server: 10.0.0.10}\n    targetDns: {testIPv4: true}\n"),
            vec![
                "t.yaml:10:5: spec.target: `targetUser` and `targetDns` exclude each other (allowed: one of targetUser, targetDns)",
            ],
        ),
        (
            "serviceName without serviceNamespace",
            netdns("    targetDns: {serviceName: coredns}\n"),
            vec!["t.yaml:10:30: spec.target.targetDns.serviceNamespace: required when serviceName is set"],
        ),
        (
            "testIPv6 as a string",
            netdns("    targetDns: {testIPv6: \"true\"}\n"),
            vec!["t.yaml:10:27: spec.target.targetDns.testIPv6: expected true or false, found string"],
        ),
        (
            "misspelt targetUser",
            netdns("    targetUsr: {server: 10.0.0.10}\n"),
            vec!["t.yaml:10:5: spec.target.targetUsr: unknown field (did you mean `targetUser`?)"],
        ),
    ]);
}

#[test]
fn kdoctor_agent_spec_and_expect() {
    let with = |extra: &str| kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}{extra}"));
    run_table(&[
        (
            "Deployment without deploymentReplicas",
            with("  agentSpec: {kind: Deployment}\n"),
            vec![
                "t.yaml:8:14: spec.agentSpec.deploymentReplicas: a Deployment without deploymentReplicas runs no agent (kdoctor's template has replicas: 0) (allowed: 1 or more)",
            ],
        ),
        (
            "Deployment with 0 replicas",
            with("  agentSpec: {kind: Deployment, deploymentReplicas: 0}\n"),
            vec!["t.yaml:8:53: spec.agentSpec.deploymentReplicas: 0 replicas run no agent (allowed: 1 or more)"],
        ),
        (
            "agent kind Job",
            with("  agentSpec: {kind: Job}\n"),
            vec!["t.yaml:8:21: spec.agentSpec.kind: `Job` is not allowed (allowed: DaemonSet, Deployment)"],
        ),
        (
            "agent kind in the wrong case",
            with("  agentSpec: {kind: Daemonset}\n"),
            vec!["t.yaml:8:21: spec.agentSpec.kind: `Daemonset` is not allowed (did you mean `DaemonSet`?)"],
        ),
        (
            "negative grace period",
            with("  agentSpec: {terminationGracePeriodMinutes: -1}\n"),
            vec!["t.yaml:8:46: spec.agentSpec.terminationGracePeriodMinutes: -1 minutes (allowed: 0 or more)"],
        ),
        (
            "annotation values that are lists",
            with("  agentSpec: {annotation: {a: [1]}}\n"),
            vec!["t.yaml:8:31: spec.agentSpec.annotation.a: expected a string, found list"],
        ),
        (
            "expect out of range",
            with("  expect: {successRate: 1.5, meanAccessDelayInMs: 0, statusCode: 600}\n"),
            vec![
                "t.yaml:8:25: spec.expect.successRate: 1.5 is not a ratio (allowed: 0–1)",
                "t.yaml:8:51: spec.expect.meanAccessDelayInMs: 0 ms (allowed: 1 or more)",
                "t.yaml:8:66: spec.expect.statusCode: 600 is not an HTTP status (allowed: 100–599)",
            ],
        ),
        (
            "successRate as text",
            with("  expect: {successRate: \"99%\"}\n"),
            vec!["t.yaml:8:25: spec.expect.successRate: expected a number, found string"],
        ),
        (
            "statusCode 99",
            with("  expect: {statusCode: 99}\n"),
            vec!["t.yaml:8:24: spec.expect.statusCode: 99 is not an HTTP status (allowed: 100–599)"],
        ),
    ]);
}

#[test]
fn kdoctor_huge_deployment_replicas_are_refused() {
    let text = kd(
        "NetReach",
        &format!("{SCHED}  agentSpec: {{kind: Deployment, deploymentReplicas: 4294967296}}\n"),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "accepted: {errs:?}");
}

// ---------------------------------------------------------------------------------------
// several problems at once, warnings

#[test]
fn every_problem_of_a_file_is_reported() {
    let text = "\
apiVersion: kpatrol.dev/v1
kind: HttpCheck
metadata:
  name: Bad_Name
spec:
  schedule: \"0 0 L * *\"
  pressure: {qps: 0, durration: 5s}
  targets:
  - url: \"ftp://x/\"
    method: TRACE
";
    let errs = errors(text);
    let expected = [
        "t.yaml:4:9: metadata.name: `Bad_Name` is not a valid Kubernetes name: it contains 'B'",
        "t.yaml:6:13: spec.schedule: `0 0 L * *` uses L, W or # (last, weekday, nth), which Kubernetes CronJobs refuse",
        "t.yaml:7:19: spec.pressure.qps: qps 0 is out of range",
        "t.yaml:7:22: spec.pressure.durration: unknown field (did you mean `duration`?)",
        "t.yaml:9:10: spec.targets[0].url: `ftp://x/` has scheme `ftp` or no host",
        "t.yaml:10:13: spec.targets[0].method: `TRACE` is not allowed",
    ];
    assert_eq!(errs.len(), 6, "{errs:#?}");
    for e in expected {
        assert!(errs.iter().any(|g| g.starts_with(e)), "missing {e}\ngot: {errs:#?}");
    }
    assert!(loaded(text).plans.is_empty());
}

#[test]
fn every_problem_of_a_kdoctor_file_is_reported() {
    let text = "\
apiVersion: kdoctor.io/v1beta1
kind: AppHttpHealthy
metadata:
  name: UPPER
spec:
  schedule: {schedule: \"0 5\", roundTimeoutMinute: 10}
  request: {qps: 100, durationInSecond: 601, perRequestTimeoutInMS: 500}
  expect: {successRate: 2}
  agentSpec: {kind: Deployment}
  target: {host: \"http://a.b/\", method: CONNECT}
";
    let errs = errors(text);
    let expected = [
        "t.yaml:4:9: metadata.name: `UPPER` is not a valid Kubernetes name",
        "t.yaml:6:51: spec.schedule.roundTimeoutMinute: round timeout of 10 minutes is longer than the schedule's interval of 5 minutes",
        "t.yaml:7:18: spec.request.qps: AppHttpHealthy requires qps 100 within kdoctor's limit",
        "t.yaml:7:41: spec.request.durationInSecond: 601 seconds does not fit the round timeout (10 min)",
        "t.yaml:8:25: spec.expect.successRate: 2 is not a ratio",
        "t.yaml:9:14: spec.agentSpec.deploymentReplicas: a Deployment without deploymentReplicas runs no agent",
        "t.yaml:10:18: spec.target.host: `a.b` is neither a domain name nor an IP address",
        "t.yaml:10:41: spec.target.method: CONNECT opens a tunnel",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for e in expected {
        assert!(errs.iter().any(|g| g.starts_with(e)), "missing {e}\ngot: {errs:#?}");
    }
}

#[test]
fn documents_of_one_file_are_read_independently() {
    let text = "\
apiVersion: kpatrol.dev/v1
kind: HttpCheck
metadata:
  name: one
spec:
  targets: []
---
apiVersion: kdoctor.io/v1beta1
kind: NetReach
metadata:
  name: two
spec:
  schedule: {schedule: \"0 1\", roundTimeoutMinute: 1}
---
# only a comment
---
apiVersion: kdoctor.io/v1beta1
kind: Netdns
metadata:
  name: three
spec: {}
";
    let ft = loaded(text);
    let errs = lines(&ft.diagnostics, Severity::Error);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        errs[0].starts_with("t.yaml:6:12: spec.targets: at least one target is needed"),
        "{errs:#?}"
    );
    for e in &errs[1..] {
        assert!(e.starts_with("t.yaml:21:7: spec."), "{e}");
    }
    assert_eq!(ft.plans.len(), 1);
    assert_eq!(ft.plans[0].name, "two");
    // The first line of the document's content (after `---`).
    assert_eq!(ft.plans[0].origin.line, 8);
}

#[test]
fn metadata_and_spec_problems_are_reported_together() {
    let text = "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: A\nspec:\n  targets: []\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("t.yaml:4:9: metadata.name: `A` is not a valid Kubernetes name"));
    assert!(errs[1].starts_with("t.yaml:6:12: spec.targets: at least one target is needed"));
}

#[test]
fn warnings_are_not_errors() {
    // kdoctor's CRD default request timeout of 5 ms is legal but almost always a mistake.
    let text = kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}  request: {{qps: 5}}\n"));
    let ft = loaded(&text);
    assert_eq!(lines(&ft.diagnostics, Severity::Error), Vec::<String>::new());
    assert_eq!(
        warnings(&text),
        vec![
            "t.yaml:8:12: warning: spec.request.perRequestTimeoutInMS: not set: kdoctor's CRD default is 5 ms, which most targets cannot meet"
        ]
    );
    assert_eq!(ft.plans.len(), 1, "a warning keeps the task valid");

    // A round timeout longer than the interval only warns.
    let text = native(&format!("  schedule: \"@every 5m\"\n  roundTimeout: 10m\n{TARGETS}"));
    let ft = loaded(&text);
    assert_eq!(lines(&ft.diagnostics, Severity::Error), Vec::<String>::new());
    assert_eq!(
        warnings(&text),
        vec![
            "t.yaml:7:17: warning: spec.roundTimeout: round timeout 10m is longer than the schedule's interval 5m: a slow round makes the next one skip"
        ]
    );
    assert_eq!(ft.plans.len(), 1);
}

// ---------------------------------------------------------------------------------------
// YAML syntax errors

fn syntax(text: &str) -> (usize, usize, String) {
    match load(text) {
        Err(LoadError::Syntax { path, pos, message }) => {
            assert_eq!(path, Path::new("t.yaml"));
            (pos.line, pos.col, message)
        }
        Err(e) => panic!("not a syntax error: {e}"),
        Ok(ft) => panic!("no syntax error for {text:?}: {:?}", ft.diagnostics),
    }
}

#[test]
fn syntax_errors_have_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("a: 1\na: 2\n", (2, 1), "duplicate key `a` in the same mapping"),
        ("a:\n\tb: 1\n", (2, 2), "tabs disallowed"),
        ("a: b: c\n", (1, 5), "mapping values are not allowed in this context"),
        (
            "key: value\n  bad: indent\n",
            (2, 6),
            "mapping values are not allowed in this context",
        ),
        ("{a: 1\n", (2, 1), "did not find expected ',' or '}'"),
        (
            "? [a]\n: 1\n",
            (1, 3),
            "mapping keys must be plain values, not lists or mappings",
        ),
        ("a: *nope\n", (1, 4), "unknown anchor"),
        ("a: @x\n", (1, 4), "unexpected character"),
        ("a: \"unclosed\nb: 1\n", (1, 4), ""),
        ("a: [1, 2\nb: 3\n", (2, 2), ""),
        (
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n  name: web2\n",
            (5, 3),
            "duplicate key `name`",
        ),
    ];
    for (text, (line, col), msg) in cases {
        let (l, c, m) = syntax(text);
        assert_eq!((l, c), (*line, *col), "{text:?}: {m}");
        assert!(m.contains(msg), "{text:?}: {m}");
    }
    // Display: `file:line:col: YAML syntax error: message`.
    let e = load("a: 1\na: 2\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:2:1: YAML syntax error: duplicate key `a` in the same mapping"
    );
}

// ---------------------------------------------------------------------------------------
// named files (checked at the edge)

#[test]
fn missing_body_file_is_reported_by_check_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("present.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let path = dir.path().join("t.yaml");
    let text = native(
        "  targets:\n  - name: a\n    url: \"http://x/\"\n    bodyFile: missing.json\n  - name: b\n    url: \"http://x/\"\n    bodyFile: present.json\n  - name: c\n    url: \"https://x/\"\n    tls: {ca: adir}\n",
    );
    let ft = load_str(&path, &text).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
    assert_eq!(ft.files.len(), 3);
    let diags: Vec<String> = check_files(&path, &ft.files).iter().map(|d| d.to_string()).collect();
    assert_eq!(diags.len(), 2, "{diags:#?}");
    let p = path.display();
    let missing = dir.path().join("missing.json");
    assert!(
        diags[0].starts_with(&format!(
            "{p}:9:15: spec.targets[0].bodyFile: file {} cannot be read: ",
            missing.display()
        )),
        "{}",
        diags[0]
    );
    assert_eq!(
        diags[1],
        format!(
            "{p}:15:15: spec.targets[2].tls.ca: {} is not a file",
            dir.path().join("adir").display()
        )
    );
}

// ---------------------------------------------------------------------------------------
// the binary

fn kpatrol(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .arg("validate")
        .args(args)
        .output()
        .expect("kpatrol runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn named_native(name: &str) -> String {
    format!("apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: {name}\nspec:\n{TARGETS}")
}

#[test]
fn binary_exit_0_for_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "ok.yaml", named_native("web"));
    let o = kpatrol(&[&f]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("1 file(s), 1 valid task(s), 0 error(s), 0 warning(s)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn binary_exit_1_for_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "bad.yaml", native("  pressure: {qps: 0}\n  targets: []\n"));
    let o = kpatrol(&[&f]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let p = f.display();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("{p}:6:19: spec.pressure.qps: qps 0 is out of range")),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("{p}:7:12: spec.targets: at least one target is needed")),
        "{out}"
    );
    assert_eq!(lines[2], "1 file(s), 0 valid task(s), 2 error(s), 0 warning(s)");
}

#[test]
fn binary_exit_1_for_a_missing_body_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.yaml",
        native("  targets:\n  - url: \"http://x/\"\n    bodyFile: nope.json\n"),
    );
    let o = kpatrol(&[&f]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with(&format!("{}:8:15: spec.targets[0].bodyFile: file ", f.display())),
        "{out}"
    );
}

#[test]
fn a_task_naming_a_missing_file_is_not_counted_valid() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}---\n{}",
        named_native("web").replace("{url: ", "{bodyFile: nope.json, url: "),
        named_native("other")
    );
    let f = write(dir.path(), "t.yaml", text);
    let o = kpatrol(&[&f]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("spec.targets[0].bodyFile: file "), "{out}");
    assert!(out.contains("1 file(s), 1 valid task(s), 1 error(s)"), "{out}");
}

#[test]
fn binary_warnings_keep_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "w.yaml",
        kd("AppHttpHealthy", &format!("{SCHED}{AHH_TARGET}  request: {{}}\n")),
    );
    let o = kpatrol(&[&f]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(": warning: spec.request.perRequestTimeoutInMS"), "{out}");
    assert!(
        out.contains("1 file(s), 1 valid task(s), 0 error(s), 1 warning(s)"),
        "{out}"
    );
}

#[test]
fn binary_exit_2_for_a_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let o = kpatrol(&[&missing]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}: cannot read", missing.display())), "{err}");
}

#[test]
fn binary_exit_2_for_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "s.yaml", "a: 1\na: 2\n");
    let good = write(dir.path(), "g.yaml", named_native("web"));
    let o = kpatrol(&[&f, &good]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{}:2:1: YAML syntax error: duplicate key `a`", f.display())),
        "{out}"
    );
    assert!(
        out.contains("2 file(s), 1 valid task(s), 0 error(s), 0 warning(s), 1 file(s) unreadable"),
        "{out}"
    );
}

#[test]
fn binary_exit_2_for_binary_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "b.yaml", [0xff, 0xfe, 0x00, 0x80, b'\n', 0xc3, 0x28]);
    let o = kpatrol(&[&f]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("not UTF-8"), "{}", stdout(&o));
}

#[test]
fn binary_walks_directories() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", named_native("a"));
    write(dir.path(), "sub/deeper/b.yml", named_native("b"));
    write(dir.path(), "notes.txt", "not: [yaml");
    write(dir.path(), ".hidden.yaml", "not: [yaml");
    write(dir.path(), ".git/c.yaml", "not: [yaml");
    let o = kpatrol(&[dir.path()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("2 file(s), 2 valid task(s), 0 error(s), 0 warning(s)"),
        "{out}"
    );

    // An error deep in the tree is found and points at that file.
    let bad = write(dir.path(), "sub/c.yaml", native("  targets: []\n"));
    let o = kpatrol(&[dir.path()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("{}:6:12: spec.targets:", bad.display())), "{out}");

    // A directory without task files cannot be validated.
    let empty = tempfile::tempdir().unwrap();
    write(empty.path(), "readme.md", "hi");
    let o = kpatrol(&[empty.path()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no task files (*.yaml, *.yml) found"));
}

#[test]
fn binary_duplicate_names_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", named_native("web"));
    let b = write(dir.path(), "b.yaml", format!("# comment\n{}", named_native("web")));
    let o = kpatrol(&[dir.path()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{}:5:9: metadata.name: HttpCheck kpatrol/web is also defined in {} (allowed: one task per kind, namespace and name)",
            b.display(),
            a.display()
        )),
        "{out}"
    );
    assert!(out.contains("2 file(s), 1 valid task(s), 1 error(s)"), "{out}");

    // Same name in another namespace or of another kind is fine.
    let other_ns = "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n  namespace: other\nspec:\n  targets: [{url: \"http://x/\"}]\n";
    std::fs::write(&b, other_ns).unwrap();
    let kdoctor_web = kd("NetReach", SCHED).replace("name: t1", "name: web");
    write(dir.path(), "c.yaml", kdoctor_web);
    let o = kpatrol(&[dir.path()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Two documents of one file count too.
    let one = tempfile::tempdir().unwrap();
    let f = write(
        one.path(),
        "two.yaml",
        format!("{}---\n{}", named_native("x"), named_native("x")),
    );
    let o = kpatrol(&[&f]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{}:11:9: metadata.name: HttpCheck kpatrol/x is also defined in {}",
            f.display(),
            f.display()
        )),
        "{out}"
    );
}

#[test]
fn binary_survives_deep_block_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "deep.yaml", format!("{}x\n", "- ".repeat(100_000)));
    let o = kpatrol(&[&f]);
    let code = o.status.code();
    assert!(
        matches!(code, Some(1) | Some(2)),
        "exit {code:?}, stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn binary_survives_garbage_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"\x00\x01\x02".to_vec(),
        (0..=255u8).collect(),
        b"\xef\xbb\xbfapiVersion: kpatrol.dev/v1\n".to_vec(),
        b"---\n...\n---\n".to_vec(),
        format!("{}{}", "[".repeat(300), "]".repeat(300)).into_bytes(),
        b"a: !!binary AAAA\n".to_vec(),
        b"\t\t\t\n".to_vec(),
    ];
    for (i, bytes) in inputs.iter().enumerate() {
        files.push(write(dir.path(), &format!("g{i}.yaml"), bytes));
    }
    for f in &files {
        let o = kpatrol(&[f]);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0..=2)),
            "{}: exit {code:?}\n{}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("panicked"),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------
// garbage never panics

fn no_panic(label: &str, text: &str) -> Result<(), String> {
    let owned = text.to_string();
    match std::panic::catch_unwind(move || {
        if let Ok(ft) = load_str(Path::new("t.yaml"), &owned) {
            // Rendering every diagnostic must not panic either.
            for d in &ft.diagnostics {
                let _ = d.to_string();
            }
        }
    }) {
        Ok(()) => Ok(()),
        Err(_) => Err(label.to_string()),
    }
}

#[test]
fn garbage_never_panics() {
    let mut inputs: Vec<(String, String)> = Vec::new();
    let mut add = |label: &str, text: String| inputs.push((label.to_string(), text));
    add("empty", String::new());
    add("only spaces", "   \n\n  ".into());
    add("document marker", "---".into());
    add("document end", "...".into());
    add("many empty documents", "---\n---\n---\n".into());
    add("empty list", "[]".into());
    add("empty map", "{}".into());
    add("integer", "42".into());
    add("null", "~".into());
    add("string", "hello".into());
    add("comment", "# nothing".into());
    add("tabs", "\t\t\ta:\t1\n\tb: 2".into());
    add("tab inside flow", "{a:\t1,\tb:\t[1,\t2]}".into());
    add("NUL", "a: \u{0}\n".into());
    add("control characters", "a: \u{1}\u{2}\u{7f}\n".into());
    add("BOM", "\u{feff}apiVersion: kpatrol.dev/v1\n".into());
    add(
        "deep flow nesting (at the scanner's limit)",
        format!("{}{}", "[".repeat(254), "]".repeat(254)),
    );
    add(
        "too deep flow nesting",
        format!("{}{}", "[".repeat(1000), "]".repeat(1000)),
    );
    add("moderate block nesting", format!("{}x\n", "- ".repeat(150)));
    add(
        "moderate map nesting",
        (0..150).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect(),
    );
    add("huge integer", "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: a}\nspec: {rounds: 99999999999999999999999999, targets: [{url: \"http://x/\"}]}".into());
    add(
        "huge qps",
        native("  pressure: {qps: 1e308, maxInFlight: 9223372036854775807}\n  targets: [{url: \"http://x/\"}]\n"),
    );
    add(
        "negative everything",
        native(
            "  rounds: -9223372036854775808\n  agents: {count: -9223372036854775808}\n  pressure: {qps: -1e308, maxInFlight: -9223372036854775808}\n  targets: [{url: \"http://x/\", followRedirects: -9223372036854775808}]\n",
        ),
    );
    add(
        "huge durations",
        native(
            "  roundTimeout: 99999999999999999999h\n  pressure: {duration: 1e300s, timeout: 18446744073709551616ms}\n  targets: [{url: \"http://x/\"}]\n",
        ),
    );
    add(
        "duration of dots",
        native("  pressure: {duration: ....s, timeout: 1.2.3s}\n  targets: [{url: \"http://x/\"}]\n"),
    );
    add(
        "huge status code",
        native("  expect: {status: [99999999999, \"99999-999999\", -1, []]}\n  targets: [{url: \"http://x/\"}]\n"),
    );
    add(
        "huge kdoctor values",
        kd(
            "Netdns",
            &format!(
                "{SCHED}  request: {{qps: 9223372036854775807, durationInSecond: -9223372036854775808, perRequestTimeoutInMS: 9223372036854775807}}\n  expect: {{successRate: 1e308, meanAccessDelayInMs: 9223372036854775807, statusCode: -9223372036854775808}}\n  target: {{targetUser: {{server: \"::\", port: 9223372036854775807}}}}\n"
            ),
        ),
    );
    add(
        "huge M N",
        kd(
            "NetReach",
            "  schedule: {schedule: \"99999999999999999999 18446744073709551615\", roundTimeoutMinute: 1, roundNumber: -9223372036854775808}\n",
        ),
    );
    add(
        "huge minutes interval",
        kd(
            "NetReach",
            "  schedule: {schedule: \"0 18446744073709551615\", roundTimeoutMinute: 1}\n",
        ),
    );
    add(
        "long string",
        native(&format!("  targets: [{{url: \"http://{}/\"}}]\n", "a".repeat(100_000))),
    );
    add(
        "long unknown key",
        native(&format!("  {}: 1\n{TARGETS}", "k".repeat(20_000))),
    );
    add(
        "long kind",
        format!("apiVersion: kdoctor.io/v1beta1\nkind: {}\n", "N".repeat(20_000)),
    );
    add(
        "unicode",
        native("  targets: [{url: \"http://äöü.例え/\", name: \"🦀\", headers: {\"X-🦀\": \"🦀\"}}]\n"),
    );
    add(
        "unicode kdoctor host",
        kd(
            "AppHttpHealthy",
            &format!("{SCHED}  target: {{host: \"ü.例え\", method: GET, header: [\"🦀: 🦀\", \":\", \"::::\"]}}\n"),
        ),
    );
    add("alias bomb", {
        let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 0..9 {
            let prev = if i == 0 {
                "*a".to_string()
            } else {
                format!("*b{}", i - 1)
            };
            s += &format!("b{i}: &b{i} [{}]\n", vec![prev; 10].join(","));
        }
        s
    });
    add("alias as a key", "a: &k x\n*k : 1\n".into());
    add(
        "anchors everywhere",
        "apiVersion: &v kpatrol.dev/v1\nkind: &k HttpCheck\nmetadata: &m {name: *k}\nspec: {targets: [*m, *v]}\n"
            .into(),
    );
    add("merge key", "base: &b {a: 1}\nx:\n  <<: *b\n".into());
    add("complex key", "? {a: 1}\n: x\n".into());
    add("null key", "~: 1\nnull: 2\n".into());
    add(
        "tagged values",
        "apiVersion: !!str kpatrol.dev/v1\nkind: !custom HttpCheck\nmetadata: !!map {name: !!int 3}\n".into(),
    );
    add(
        "block scalars",
        "apiVersion: |\n  kpatrol.dev/v1\nkind: >-\n  HttpCheck\n".into(),
    );
    add("directives", "%YAML 1.2\n%TAG ! tag:x,2000:\n---\na: 1\n".into());
    add("unknown directive", "%FOO bar\n---\na: 1\n".into());
    add("stray closing brackets", "]]]}}}".into());
    add("lone colon", ":".into());
    add("lone dash", "-".into());
    add("lone question mark", "?".into());
    add("quotes", "'\"'\"'\"".into());
    add("CRLF", "apiVersion: kpatrol.dev/v1\r\nkind: HttpCheck\r\nmetadata:\r\n  name: web\r\nspec:\r\n  targets: [{url: \"http://x/\"}]\r\n".into());
    add("CR only", "apiVersion: kpatrol.dev/v1\rkind: HttpCheck\r".into());
    add(
        "every field null",
        "apiVersion: ~\nkind: ~\nmetadata: ~\nspec: ~\nstatus: ~\n".into(),
    );
    add(
        "kdoctor every block null",
        kd(
            "Netdns",
            "  schedule: ~\n  request: ~\n  expect: ~\n  target: ~\n  agentSpec: ~\n",
        ),
    );
    add(
        "kdoctor blocks of the wrong type",
        kd(
            "AppHttpHealthy",
            "  schedule: 1\n  request: x\n  expect: []\n  target: true\n  agentSpec: [1]\n",
        ),
    );
    add(
        "kdoctor targets of the wrong type",
        kd(
            "Netdns",
            &format!(
                "{SCHED}  request: {{perRequestTimeoutInMS: 5}}\n  expect: {{}}\n  target: {{targetUser: [], targetDns: \"x\"}}\n"
            ),
        ),
    );
    add(
        "NetReach target of the wrong type",
        kd("NetReach", &format!("{SCHED}  target: [1]\n")),
    );
    add(
        "native blocks of the wrong type",
        native("  schedule: []\n  agents: 1\n  pressure: x\n  expect: 1\n  targets: [1, \"x\", [], ~]\n"),
    );
    add(
        "huge replicas",
        kd(
            "NetReach",
            &format!("{SCHED}  agentSpec: {{kind: Deployment, deploymentReplicas: 9223372036854775807}}\n"),
        ),
    );
    add(
        "IPv6 host",
        kd(
            "AppHttpHealthy",
            &format!("{SCHED}  target: {{host: \"[::1\", method: GET}}\n"),
        ),
    );
    add(
        "empty host",
        kd(
            "AppHttpHealthy",
            &format!("{SCHED}  target: {{host: \"\", method: GET}}\n"),
        ),
    );
    add(
        "only http",
        kd(
            "AppHttpHealthy",
            &format!("{SCHED}  target: {{host: \"http\", method: GET}}\n"),
        ),
    );
    add("many documents", "---\na: 1\n".repeat(2000));

    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|(label, text)| no_panic(label, text).err())
        .collect();
    assert!(inputs.len() >= 40, "only {} inputs", inputs.len());
    assert!(failures.is_empty(), "panicked on: {failures:?}");
}

#[test]
fn alias_bomb_is_a_syntax_error() {
    let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "*a".to_string()
        } else {
            format!("*b{}", i - 1)
        };
        s += &format!("b{i}: &b{i} [{}]\n", vec![prev; 10].join(","));
    }
    let (_, _, message) = syntax(&s);
    assert!(message.contains("more than"), "{message}");
}

#[test]
fn huge_round_timeout_minute_does_not_panic() {
    let text = kd(
        "NetReach",
        "  schedule: {schedule: \"*/5 * * * *\", roundTimeoutMinute: 9223372036854775807}\n",
    );
    no_panic("roundTimeoutMinute i64::MAX", &text).unwrap();
    let text = kd(
        "NetReach",
        "  schedule: {schedule: \"*/5 * * * *\", roundTimeoutMinute: 9223372036854775807}\n  request: {durationInSecond: 2, perRequestTimeoutInMS: 500}\n",
    );
    no_panic("roundTimeoutMinute i64::MAX with request", &text).unwrap();
    // Whatever it decides, it must not accept a round timeout that wrapped around.
    if let Ok(ft) = load(&text) {
        for p in &ft.plans {
            assert!(p.round_timeout.as_secs() >= 60, "{:?}", p.round_timeout);
        }
    }
}

#[test]
fn huge_minutes_interval_does_not_panic() {
    let text = native(&format!(
        "  schedule: \"0 18446744073709551615\"\n  roundTimeout: 1m\n{TARGETS}"
    ));
    no_panic("\"0 u64::MAX\" with roundTimeout", &text).unwrap();
}

#[test]
fn kdoctor_huge_interval_is_not_wrapped() {
    let text = kd(
        "NetReach",
        "  schedule: {schedule: \"0 9223372036854775808\", roundTimeoutMinute: 1}\n",
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .all(|e| !e.contains("is longer than the schedule's interval")),
        "{errs:#?}"
    );
}

#[test]
fn kdoctor_block_of_the_wrong_type_is_reported_once() {
    let errs = errors(&kd("NetReach", "  schedule: [\"0 1\"]\n"));
    assert_eq!(errs, vec!["t.yaml:6:13: spec.schedule: expected a mapping, found list"]);
    let errs = errors(&kd(
        "Netdns",
        &format!("{SCHED}  request: [1]\n  expect: 5\n  target: {{}}\n"),
    ));
    assert_eq!(
        errs,
        vec![
            "t.yaml:7:12: spec.request: expected a mapping, found list",
            "t.yaml:8:11: spec.expect: expected a mapping, found integer",
        ]
    );
}

#[test]
fn huge_status_class_does_not_panic() {
    let text = native(&format!("  expect: {{status: [\"9999xx\"]}}\n{TARGETS}"));
    no_panic("status 9999xx", &text).unwrap();
    assert_eq!(errors(&text).len(), 1);
}

#[test]
fn a_document_with_errors_yields_no_plan() {
    for text in [
        native(&format!("  bogus: 1\n{TARGETS}")),
        format!("{}bogus: 2\n", native(TARGETS)),
        native(TARGETS).replace("  name: web\n", "  name: web\n  namespace: Bad_NS\n"),
        kd("NetReach", &format!("{SCHED}  target: {{ipv4: \"yes\"}}\n")),
        kd("NetReach", &format!("{SCHED}  bogus: 1\n")),
    ] {
        let ft = loaded(&text);
        assert!(!lines(&ft.diagnostics, Severity::Error).is_empty(), "{text}");
        assert!(ft.plans.is_empty(), "a plan for an invalid document:\n{text}");
    }
}

#[test]
fn review_findings_are_reported() {
    // a target may not be called `round`
    let errs = errors(&native("  targets:\n  - {name: round, url: \"http://x/\"}\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.targets[0].name: `round` names the whole round")),
        "{errs:?}"
    );
    // time zones are checked and kept
    let errs = errors(&native(&format!("  timeZone: \"Mars Olympus\"\n{TARGETS}")));
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.timeZone: `Mars Olympus` is not a time zone of the tz database")),
        "{errs:?}"
    );
    let ft = loaded(&native(&format!(
        "  schedule: \"0 9 * * *\"\n  timeZone: Europe/Berlin\n{TARGETS}"
    )));
    assert_eq!(ft.plans[0].time_zone.as_deref(), Some("Europe/Berlin"));
    // a kdoctor task's namespace is replaced, with a warning
    let text = kd("NetReach", SCHED).replace("  name: t1\n", "  name: t1\n  namespace: monitoring\n");
    let ft = loaded(&text);
    assert_eq!(ft.plans.len(), 1);
    let warns = lines(&ft.diagnostics, Severity::Warning);
    assert!(
        warns
            .iter()
            .any(|w| w.contains("metadata.namespace: kdoctor tasks are cluster-scoped")),
        "{warns:?}"
    );
    // kdoctor would refuse a URL with spaces around it
    let errs = errors(&kd(
        "AppHttpHealthy",
        &format!("{SCHED}  target: {{host: \" http://127.0.0.1/ \", method: GET}}\n"),
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.target.host: the URL has spaces around it")),
        "{errs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// hardening (issue 9): schedules with stray spaces, large and odd inputs, scalars kept as
// written, one-line diagnostics

#[test]
fn kdoctor_schedule_with_stray_spaces_is_refused_not_a_panic() {
    let sch = |text: &str| {
        kd(
            "NetReach",
            &format!("  schedule: {{schedule: \"{text}\", roundTimeoutMinute: 1}}\n"),
        )
    };
    for text in ["0  * * *", "0 1 * * ", " 0 1 * *", "0 1 *  *", "0 1 ", " 0 1"] {
        let errs = errors(&sch(text));
        assert_eq!(
            errs,
            vec![format!(
                "t.yaml:6:24: spec.schedule.schedule: `{text}` has a doubled, leading or trailing space; kdoctor separates parts by single spaces (allowed: \"M N\" (start after M minutes, then every N minutes, N ≥ 1) or a 5-field cron expression, fields separated by single spaces)"
            )],
            "{text:?}"
        );
    }
    // and through the binary: an invalid task (1), not an abort (134)
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "k.yaml", sch("0 1 * * "));
    let o = kpatrol(&[&f]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn many_keys_are_checked_for_duplicates_in_linear_time() {
    // 50,000 annotations and one repeated key at the end
    let n = 50_000;
    let mut text =
        String::from("apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n  annotations:\n");
    for i in 0..n {
        text += &format!("    k{i}: v\n");
    }
    text += "    k17: again\n";
    let started = std::time::Instant::now();
    let (line, col, message) = syntax(&text);
    let took = started.elapsed();
    assert_eq!((line, col), (n + 6, 5), "{message}");
    assert!(message.contains("duplicate key `k17`"), "{message}");
    // quadratic took 11 s in release; linear takes milliseconds, even in a debug build
    assert!(took < std::time::Duration::from_secs(4), "took {took:?}");
}

/// Runs `kpatrol validate` with a deadline: a hang fails the test instead of stalling it.
fn kpatrol_within(args: &[&Path], within: std::time::Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_kpatrol"))
        .arg("validate")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kpatrol runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(o) => o.expect("kpatrol output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("kpatrol validate did not finish within {within:?}");
        }
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(ok.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_in_a_directory_is_skipped_and_a_named_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", named_native("a"));
    let fifo = dir.path().join("pipe.yaml");
    mkfifo(&fifo);
    let o = kpatrol_within(&[dir.path()], std::time::Duration::from_secs(8));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1 file(s), 1 valid task(s)"), "{out}");

    let o = kpatrol_within(&[&fifo], std::time::Duration::from_secs(8));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{}: cannot read: not a regular file", fifo.display())),
        "{out}"
    );
}

#[test]
fn an_unreadable_subdirectory_is_one_problem_and_the_rest_is_validated() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", named_native("a"));
    write(dir.path(), "z/b.yaml", named_native("b"));
    let locked = dir.path().join("m");
    write(&locked, "c.yaml", named_native("c"));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // root reads a 0o000 directory all the same: then there is nothing unreadable to report
    let as_root = std::fs::read_dir(&locked).is_ok();
    let o = kpatrol_within(&[dir.path()], std::time::Duration::from_secs(8));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = stdout(&o);
    if as_root {
        eprintln!("running as root: a 0o000 directory is readable, the unreadable case is not checked");
        assert_eq!(o.status.code(), Some(0), "{out}");
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("{}: cannot read: ", locked.display())), "{out}");
    // the files beside it and after it were validated
    assert!(
        out.contains("2 file(s), 2 valid task(s), 0 error(s), 0 warning(s), 1 file(s) unreadable"),
        "{out}"
    );
}

#[test]
fn scalars_read_as_strings_keep_their_source_text() {
    use kpatrol::modes::http::HeaderValue;
    use kpatrol::plan::Mode;
    let text = native(
        "  targets:\n  - url: \"http://x/\"\n    headers: {X-Version: 1.10, X-Agent: 007, X-Hex: 0x1f, X-Yes: true, X-Exp: 1e3}\n",
    )
    .replace("  name: web\n", "  name: web\n  labels: {release: 1.10, build: 007}\n");
    let ft = loaded(&text);
    assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
    let plan = &ft.plans[0];
    let Mode::Http(h) = &plan.mode else {
        panic!("an http plan")
    };
    let headers: Vec<(String, String)> = h.targets[0]
        .headers
        .iter()
        .map(|hd| match &hd.value {
            HeaderValue::Inline(v) => (hd.name.clone(), v.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    for (name, value) in [
        ("X-Version", "1.10"),
        ("X-Agent", "007"),
        ("X-Hex", "0x1f"),
        ("X-Yes", "true"),
        ("X-Exp", "1e3"),
    ] {
        assert!(
            headers.contains(&(name.to_string(), value.to_string())),
            "{name}: {value} expected in {headers:?}"
        );
    }
    assert_eq!(plan.labels["release"], "1.10");
    assert_eq!(plan.labels["build"], "007");
    // the task a pod reads (the rendered ConfigMap) keeps them too, and still reads back the same
    let rendered = kpatrol::render::render(
        &ft.plans,
        &kpatrol::render::RenderOptions {
            image: "registry.example/kpatrol:test".into(),
        },
    )
    .expect("renders");
    let cm = rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    let task_yaml = cm["data"]["task.yaml"].as_str().unwrap();
    let again = loaded(task_yaml);
    let Mode::Http(h2) = &again.plans[0].mode else {
        panic!("an http plan")
    };
    let sorted = |hs: &[kpatrol::modes::http::Header]| {
        let mut v: Vec<String> = hs.iter().map(|h| format!("{h:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&h2.targets[0].headers),
        sorted(&h.targets[0].headers),
        "{task_yaml}"
    );
    assert_eq!(again.plans[0].labels, plan.labels, "{task_yaml}");
    // numbers read as numbers are still numbers
    let ft = loaded(&native(&format!(
        "  pressure: {{qps: 0x1f, maxInFlight: 010}}\n{TARGETS}"
    )));
    assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
}

#[test]
fn an_echoed_value_with_a_newline_stays_on_one_line() {
    let errs = errors(&native(
        "  targets:\n  - url: \"http://x/\"\n    method: \"GET\\nX-Evil: 1\"\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("t.yaml:8:13: spec.targets[0].method: `GET\\nX-Evil: 1` is not allowed"),
        "{errs:?}"
    );
    assert!(!errs[0].contains('\n'), "{errs:?}");
    // a key with a control character: the field path is escaped too
    let errs = errors(&native(&format!("{TARGETS}  \"a\\tb\\e\": 1\n")));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("t.yaml:7:3: spec.a\\tb\\u{1b}: unknown field"),
        "{errs:?}"
    );
}

#[test]
fn a_huge_echoed_value_is_cut() {
    let huge = "x".repeat(1 << 20);
    let errs = errors(&native(&format!("{TARGETS}  schedule: \"{huge}\"\n")));
    assert_eq!(errs.len(), 1);
    let cut = format!("`{}…` has 1 fields", "x".repeat(80));
    assert!(errs[0].contains(&cut), "{}", &errs[0][..200]);
    assert!(errs[0].len() < 1000, "{} bytes", errs[0].len());
    // a huge unknown key (explicit: an implicit key has at most 1024 characters), in the field path
    let errs = errors(&native(&format!("{TARGETS}  ? {huge}\n  : 1\n")));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].len() < 1000, "{} bytes", errs[0].len());
    assert!(
        errs[0].contains(&format!("spec.{}…: unknown field", "x".repeat(80))),
        "{}",
        &errs[0][..200]
    );
}

#[test]
fn a_file_that_is_not_utf8_gets_the_position_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "b.yaml",
        b"apiVersion: kpatrol.dev/v1\nkind: \xc3\xa9\xff HttpCheck\n",
    );
    match kpatrol::plan::load_file(&f) {
        Err(e @ LoadError::Encoding { .. }) => assert_eq!(
            e.to_string(),
            format!("{}:2:8: not UTF-8 text: byte 0xff is not valid UTF-8", f.display())
        ),
        other => panic!("{other:?}"),
    }
    let o = kpatrol(&[&f]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("{}:2:8: not UTF-8 text", f.display())),
        "{}",
        stdout(&o)
    );
}

#[test]
fn nan_and_infinity_are_not_finite_numbers() {
    for (v, col) in [(".nan", 25), (".inf", 25), ("-.inf", 25)] {
        let errs = errors(&native(&format!("  expect: {{successRate: {v}}}\n{TARGETS}")));
        assert_eq!(
            errs,
            vec![format!(
                "t.yaml:6:{col}: spec.expect.successRate: `{v}` is not a finite number"
            )],
            "{v}"
        );
    }
}

#[test]
fn a_null_spec_is_reported_where_it_is() {
    for (text, pos) in [
        (
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\nspec: null\n",
            "5:7",
        ),
        (
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\nspec: ~\n",
            "5:7",
        ),
        (
            "apiVersion: kdoctor.io/v1beta1\nkind: Netdns\nmetadata:\n  name: t1\nspec:\n",
            "5:5",
        ),
    ] {
        assert_eq!(
            errors(text),
            vec![format!("t.yaml:{pos}: spec: spec is null; expected a mapping")],
            "{text}"
        );
    }
    // absent is still missing, at the document
    assert_eq!(
        errors("apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata:\n  name: web\n"),
        vec!["t.yaml:1:1: spec: required field is missing"]
    );
}
