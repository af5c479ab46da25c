//! The rules a task must follow beyond its shape, each found wanting by an adversarial pass:
//! Secret and ConfigMap names and keys that would leave the mounts, expectations that can
//! never or always pass, and values Kubernetes or `run` would refuse later (labels, node
//! selectors, time zones, TLS server names, replica counts, domains). Every case is refused
//! at validation with file:line:col, the field path and what is allowed.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use kpatrol::diag::Severity;
use kpatrol::plan::{Overrides, Rate, load_str, load_str_with};

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");

fn errors(text: &str) -> Vec<String> {
    let ft = load_str(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    ft.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

/// Each case: (what, task text, the start of the one error it must give).
fn refused(cases: &[(&str, String, &str)]) {
    let mut failures = Vec::new();
    for (what, text, expected) in cases {
        let got = errors(text);
        if got.len() != 1 || !got[0].starts_with(expected) {
            failures.push(format!(
                "{what}:\n  expected one error starting `{expected}`\n  got {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn http(target: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: t}}\nspec:\n  targets:\n    - url: http://127.0.0.1:9/\n{target}"
    )
}

fn http_spec(spec: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: t}}\nspec:\n{spec}  targets:\n    - url: http://127.0.0.1:9/\n"
    )
}

#[test]
fn secret_and_config_map_references_cannot_leave_the_mounts() {
    refused(&[
        (
            "a Secret name climbing out",
            http("      headers: {X: {secret: \"../../../../etc\", key: hostname}}\n"),
            "t.yaml:7:29: spec.targets[0].headers.X.secret: `../../../../etc` is not a valid Kubernetes object name",
        ),
        (
            "an absolute key",
            http("      headers: {X: {secret: creds, key: /etc/hostname}}\n"),
            "t.yaml:7:41: spec.targets[0].headers.X.key: `/etc/hostname` is not a valid Secret or ConfigMap key",
        ),
        (
            "a key that is the parent directory",
            http("      headers: {X: {secret: creds, key: ..}}\n"),
            "t.yaml:7:41: spec.targets[0].headers.X.key: `..` is not a valid Secret or ConfigMap key",
        ),
        (
            "a ConfigMap name with a slash",
            http("      bodyFrom: {configMap: a/b, key: body}\n"),
            "t.yaml:7:29: spec.targets[0].bodyFrom.configMap: `a/b` is not a valid Kubernetes object name",
        ),
        (
            "a ConfigMap key with a slash",
            http("      bodyFrom: {configMap: bodies, key: x/../../y}\n"),
            "t.yaml:7:42: spec.targets[0].bodyFrom.key: `x/../../y` is not a valid Secret or ConfigMap key",
        ),
        (
            "a TLS Secret climbing out",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: t}\nspec:\n  targets:\n    - url: https://127.0.0.1:9/\n      tls: {secret: ../etc}\n"
                .to_string(),
            "t.yaml:7:21: spec.targets[0].tls.secret: `../etc` is not a valid Kubernetes object name",
        ),
        (
            "kdoctor's TLS Secret climbing out",
            kdoctor_ahh("    tlsSecretName: ../../etc\n    tlsSecretNamespace: kube-system\n"),
            "t.yaml:8:20: spec.target.tlsSecretName: `../../etc` is not a valid Kubernetes object name",
        ),
        (
            "kdoctor's body ConfigMap in a path-like namespace",
            kdoctor_ahh("    bodyConfigmapName: body\n    bodyConfigmapNamespace: ../ns\n"),
            "t.yaml:9:29: spec.target.bodyConfigmapNamespace: `../ns` is not a valid namespace",
        ),
    ]);
}

fn kdoctor_ahh(target_extra: &str) -> String {
    format!(
        "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {{name: t}}\nspec:\n  schedule: {{schedule: \"0 1\", roundTimeoutMinute: 1}}\n  target:\n    host: http://127.0.0.1:9\n{target_extra}    method: GET\n"
    )
}

#[test]
fn run_and_render_refuse_a_traversing_reference_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = support::task_file(
        dir.path(),
        "t.yaml",
        &http("      headers: {X: {secret: \"../../../../etc\", key: hostname}}\n"),
    );
    let run = Command::new(KPATROL)
        .args(["run", "--mounts"])
        .arg(dir.path())
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("is not a valid Kubernetes object name"));
    let out = dir.path().join("rendered");
    let render = Command::new(KPATROL)
        .arg("render")
        .arg(&f)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(render.status.code(), Some(1));
    assert!(!out.exists(), "nothing is rendered");
}

#[test]
fn expectations_that_can_never_or_always_pass_are_refused() {
    refused(&[
        (
            "an empty status list",
            http_spec("  expect: {status: []}\n"),
            "t.yaml:5:20: spec.expect.status: an empty list would count every status",
        ),
        (
            "a zero latency limit",
            http_spec("  expect: {latency: {p50: 0s}}\n"),
            "t.yaml:5:27: spec.expect.latency.p50: a latency limit of 0s can never be met",
        ),
        (
            "a microsecond latency limit",
            http_spec("  expect: {latency: {mean: 0.001ms}}\n"),
            "t.yaml:5:28: spec.expect.latency.mean: a latency limit of 0.001ms can never be met",
        ),
        (
            "a sending window under a millisecond",
            http_spec("  pressure: {duration: 0.001ms}\n"),
            "t.yaml:5:24: spec.pressure.duration: 0.001ms is out of range",
        ),
        (
            "an empty rcode list",
            "apiVersion: kpatrol.dev/v1\nkind: DnsCheck\nmetadata: {name: t}\nspec:\n  expect: {rcodes: []}\n  targets: [{server: 127.0.0.1, queries: [{name: a.example}]}]\n"
                .to_string(),
            "t.yaml:5:20: spec.expect.rcodes: an empty list would count every reply",
        ),
    ]);
}

#[test]
fn values_kubernetes_would_refuse_are_refused_at_validation() {
    let netdns = |domain: &str| {
        format!(
            "apiVersion: kdoctor.io/v1beta1\nkind: Netdns\nmetadata: {{name: t}}\nspec:\n  schedule: {{schedule: \"0 1\", roundTimeoutMinute: 1}}\n  request: {{domain: {domain}}}\n  target: {{targetUser: {{server: 127.0.0.1}}}}\n  expect: {{successRate: 1, meanAccessDelayInMs: 1000}}\n"
        )
    };
    refused(&[
        (
            "a label key with a space",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: t, labels: {\"a b\": x}}\nspec:\n  targets: [{url: http://127.0.0.1:9/}]\n"
                .to_string(),
            "t.yaml:3:30: metadata.labels.a b: `a b` is not a valid label key",
        ),
        (
            "a label value too long",
            format!(
                "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: t, labels: {{team: {}}}}}\nspec:\n  targets: [{{url: http://127.0.0.1:9/}}]\n",
                "x".repeat(64)
            ),
            "t.yaml:3:36: metadata.labels.team: `xxxx",
        ),
        (
            "a node selector value with a slash",
            http_spec("  agents: {perNode: {nodeSelector: {zone: a/b}}}\n"),
            "t.yaml:5:43: spec.agents.perNode.nodeSelector.zone: `a/b` is not a valid label value",
        ),
        (
            "a time zone not in the database",
            http_spec("  schedule: \"0 * * * *\"\n  timeZone: Not/AZone\n"),
            "t.yaml:6:13: spec.timeZone: `Not/AZone` is not a time zone of the tz database",
        ),
        (
            "an empty TLS server name",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: t}\nspec:\n  targets:\n    - url: https://127.0.0.1:9/\n      tls: {serverName: \"\"}\n"
                .to_string(),
            "t.yaml:7:25: spec.targets[0].tls.serverName: `` is not a valid host name: it is blank",
        ),
        (
            "a two-line TLS server name",
            "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: t}\nspec:\n  targets:\n    - url: https://127.0.0.1:9/\n      tls: {serverName: \"a\\nb\"}\n"
                .to_string(),
            "t.yaml:7:25: spec.targets[0].tls.serverName:",
        ),
        (
            "more replicas than an Indexed Job runs",
            "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {name: t}\nspec:\n  schedule: {schedule: \"0 1\", roundTimeoutMinute: 1}\n  agentSpec: {kind: Deployment, deploymentReplicas: 2147483647}\n  target: {host: http://127.0.0.1:9, method: GET}\n"
                .to_string(),
            "t.yaml:6:53: spec.agentSpec.deploymentReplicas: 2147483647 replicas",
        ),
        ("a domain with an empty part", netdns("a..b"), "t.yaml:6:21: spec.request.domain: `a..b` is not a valid host name"),
        ("a blank domain", netdns("\" \""), "t.yaml:6:21: spec.request.domain:"),
        ("a domain with a newline", netdns("\"a\\nb.example\""), "t.yaml:6:21: spec.request.domain:"),
        (
            "a non-ASCII domain",
            netdns("bücher.example"),
            "t.yaml:6:21: spec.request.domain: `bücher.example` is not a valid host name: it is not ASCII",
        ),
    ]);
}

#[test]
fn good_names_still_pass() {
    let text = "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: t, labels: {app.kubernetes.io/name: kpatrol, team: \"\"}}\nspec:\n  schedule: \"0 * * * *\"\n  timeZone: Europe/Berlin\n  agents: {perNode: {nodeSelector: {kubernetes.io/os: linux}}}\n  targets:\n    - url: https://127.0.0.1:9/\n      headers: {Authorization: {secret: api-token.v2, key: token_1}}\n      tls: {secret: api-tls, serverName: api.example.com}\n";
    assert_eq!(errors(text), Vec::<String>::new());
}

#[test]
fn command_line_overrides_keep_the_task_file_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let f = support::task_file(dir.path(), "t.yaml", &http(""));
    for (flag, value, says) in [
        ("--max-in-flight", "2000000", "out of range"),
        ("--max-in-flight", "0", "out of range"),
        ("--duration", "0.001ms", "out of range"),
        ("--duration", "25h", "out of range"),
        (
            "--qps",
            "0",
            "t.yaml: --qps (command line): qps 0 is out of range (allowed: above 0",
        ),
        ("--qps", "NaN", "--qps (command line): qps NaN is out of range"),
        ("--qps", "fast", "--qps fast: expected a number or `max`"),
        ("--duration", "soon", "--duration soon: expected a duration such as 30s"),
    ] {
        let out = Command::new(KPATROL)
            .args(["run", flag, value])
            .arg(&f)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}

/// Overrides are raw values planned with the file's: defaults that follow from the pressure
/// follow them, and rules across fields see them.
#[test]
fn command_line_overrides_are_planned_with_the_task() {
    let flags = |qps, duration| Overrides::from_flags(qps, duration, None).unwrap();
    // the default round timeout follows the duration given on the command line
    let ft = load_str_with(Path::new("t.yaml"), &http(""), &flags(None, Some("5m"))).unwrap();
    let plan = &ft.plans[0];
    assert_eq!(plan.pressure.duration.as_secs(), 300);
    assert_eq!(plan.round_timeout.as_secs(), 420, "5m + 1s + 1m, in whole minutes");
    // a round timeout the task sets is checked against the duration the command line sets
    let task = http_spec(
        "  roundTimeout: 1m
",
    );
    let ft = load_str_with(Path::new("t.yaml"), &task, &flags(None, Some("5m"))).unwrap();
    let errors: Vec<String> = ft.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(ft.plans.is_empty());
    assert_eq!(
        errors,
        [
            "t.yaml:5:17: spec.roundTimeout: round timeout 1m is shorter than pressure.duration + pressure.timeout = 5m1s (allowed: at least 5m1s)"
        ]
    );
    // a kdoctor task takes the native flags, beyond kdoctor's own qps limit
    let kdoctor = "apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {name: t}\nspec:\n  schedule: {schedule: \"0 1\", roundTimeoutMinute: 1}\n  request: {qps: 10, durationInSecond: 2, perRequestTimeoutInMS: 500}\n  target: {host: \"http://127.0.0.1:9/\", method: GET}\n";
    let ft = load_str_with(Path::new("k.yaml"), kdoctor, &flags(Some("max"), None)).unwrap();
    assert!(
        ft.plans.iter().all(|p| p.pressure.rate == Rate::Max),
        "{:?}",
        ft.diagnostics
    );
    assert!(!ft.plans.is_empty());
}

#[test]
fn validate_and_render_warn_when_an_agent_cannot_fit_its_pod() {
    let dir = tempfile::tempdir().unwrap();
    let targets: String = (0..300)
        .map(|i| format!("    - {{name: t{i}, url: \"http://127.0.0.1:9/{i}\"}}\n"))
        .collect();
    let big = format!(
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {{name: big}}\nspec:\n  pressure: {{qps: max, maxInFlight: 512}}\n  targets:\n{targets}"
    );
    let f = support::task_file(dir.path(), "big.yaml", &big);
    let validate = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(0), "a warning is not an error: {stdout}");
    assert!(
        stdout.contains("big.yaml:5:13: warning: spec.pressure: an agent may need about")
            && stdout.contains("above its pod's memory limit of 128Mi"),
        "{stdout}"
    );
    let render = Command::new(KPATROL).arg("render").arg(&f).output().unwrap();
    assert_eq!(render.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&render.stderr).contains("above its pod's memory limit of 128Mi"));
    // with room for it, or at a modest rate, no warning
    let roomy = big.replace(
        "maxInFlight: 512}",
        "maxInFlight: 512}\n  agents: {count: 1, resources: {limits: {memory: 4Gi}}}",
    );
    let modest = big.replace("qps: max, maxInFlight: 512", "qps: 10");
    for text in [roomy, modest] {
        let f = support::task_file(dir.path(), "ok.yaml", &text);
        let out = Command::new(KPATROL).arg("validate").arg(&f).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && !stdout.contains("memory limit"), "{stdout}");
    }
}
