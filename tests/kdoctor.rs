//! kdoctor compatibility: every field of `kdoctor.io/v1beta1` AppHttpHealthy, NetReach and
//! Netdns lands in the plan with kdoctor's meaning and defaults (CRD defaults inside a
//! present block, the mutating webhook's defaults for an absent one).

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kpatrol::diag::Severity;
use kpatrol::modes::dns::*;
use kpatrol::modes::http::*;
use kpatrol::modes::reach::{Peers, ReachPlan};
use kpatrol::plan::load_str;
use kpatrol::plan::schedule::Schedule;
use kpatrol::plan::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// helpers

/// Loads `text`, which must hold exactly one valid task, and returns its plan.
fn plan(text: &str) -> Plan {
    let ft = load_str(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let errors: Vec<String> = ft
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "errors:\n{}\n--- text ---\n{text}",
        errors.join("\n")
    );
    assert_eq!(ft.plans.len(), 1, "{text}");
    ft.plans.into_iter().next().unwrap()
}

/// Warnings, but NetReach's own (its mode cannot run yet, checked on its own below).
fn warnings(text: &str) -> Vec<String> {
    load_str(Path::new("t.yaml"), text)
        .unwrap()
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn netreach_loads_without_warnings_and_renders_its_service_and_ingress() {
    let ft = load_str(Path::new("t.yaml"), &doc("NetReach", SCHED)).unwrap();
    assert_eq!(ft.plans.len(), 1);
    assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
    let all = format!("{SCHED}  target:\n    loadBalancer: true\n    ingress: true\n");
    let ft = load_str(Path::new("t.yaml"), &doc("NetReach", &all)).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:?}", ft.diagnostics);
    let rendered = kpatrol::render::render(&ft.plans, &Default::default()).unwrap();
    let kinds: Vec<&str> = rendered.objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(kinds.contains(&"Service") && kinds.contains(&"Ingress"), "{kinds:?}");
    let svc = rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["spec"]["clusterIP"] != "None")
        .unwrap();
    let headless = rendered
        .objects
        .iter()
        .find(|o| o["spec"]["clusterIP"] == "None")
        .unwrap();
    assert!(
        headless["metadata"]["name"].as_str().unwrap().ends_with("-agents"),
        "{headless}"
    );
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let ing = rendered.objects.iter().find(|o| o["kind"] == "Ingress").unwrap();
    assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["path"], "/kpatrol");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        svc["metadata"]["name"]
    );
}

fn doc(kind: &str, spec: &str) -> String {
    format!("apiVersion: kdoctor.io/v1beta1\nkind: {kind}\nmetadata:\n  name: task-1\nspec:\n{spec}")
}

const SCHED: &str = "  schedule:\n    schedule: \"0 1\"\n    roundTimeoutMinute: 1\n";

/// An AppHttpHealthy with the given `target` fields (indented 4) and other spec blocks.
fn ahh(target: &str, rest: &str) -> Plan {
    plan(&doc("AppHttpHealthy", &format!("{SCHED}  target:\n{target}{rest}")))
}

fn ahh_basic(rest: &str) -> Plan {
    ahh("    host: http://10.0.0.1:80/\n    method: GET\n", rest)
}

fn http_target(p: &Plan) -> &HttpTarget {
    match &p.mode {
        Mode::Http(h) => {
            assert_eq!(h.targets.len(), 1, "AppHttpHealthy has one target");
            &h.targets[0]
        }
        m => panic!("not an HTTP plan: {m:?}"),
    }
}

fn reach(p: &Plan) -> &ReachPlan {
    match &p.mode {
        Mode::Reach(r) => r,
        m => panic!("not a reach plan: {m:?}"),
    }
}

fn dns(p: &Plan) -> &DnsPlan {
    match &p.mode {
        Mode::Dns(d) => d,
        m => panic!("not a DNS plan: {m:?}"),
    }
}

fn net_reach(rest: &str) -> Plan {
    plan(&doc("NetReach", &format!("{SCHED}{rest}")))
}

/// A Netdns with `request` and `target` blocks as given (each indented 4).
fn netdns(request: &str, target: &str) -> Plan {
    plan(&doc(
        "Netdns",
        &format!("{SCHED}  request:\n{request}  expect: {{}}\n  target:\n{target}"),
    ))
}

fn netdns_user(target_user: &str) -> Plan {
    netdns(
        "    perRequestTimeoutInMS: 500\n",
        &format!("    targetUser:\n{target_user}"),
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------
// identity

#[test]
fn identity_of_each_kind() {
    let p = ahh_basic("");
    assert_eq!(p.name, "task-1");
    assert_eq!(p.kind, "AppHttpHealthy");
    assert_eq!(p.format, Format::Kdoctor);
    assert_eq!(p.namespace, "kpatrol", "kdoctor tasks are cluster-scoped");
    assert_eq!(p.origin.file, Path::new("t.yaml"));
    assert_eq!(p.mode.name(), "http");

    let p = net_reach("");
    assert_eq!(p.kind, "NetReach");
    assert_eq!(p.format, Format::Kdoctor);
    assert_eq!(p.mode.name(), "reach");

    let p = netdns_user("      server: 10.0.0.10\n");
    assert_eq!(p.kind, "Netdns");
    assert_eq!(p.format, Format::Kdoctor);
    assert_eq!(p.mode.name(), "dns");
}

#[test]
fn metadata_as_kubectl_prints_it_is_accepted() {
    let text = "\
apiVersion: kdoctor.io/v1beta1
kind: NetReach
metadata:
  name: from-kubectl
  namespace: ignored-for-cluster-scoped
  labels: {team: net, tier: \"1\"}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: \"{}\"}
  uid: 0b6e7e0a-5b0c-4a0b-9d0e-1f2f3f4f5f6f
  resourceVersion: \"12345\"
  generation: 1
  creationTimestamp: \"2024-11-24T00:00:00Z\"
  managedFields: [{manager: kubectl, operation: Update}]
  finalizers: [x]
spec:
  schedule: {schedule: \"0 1\", roundTimeoutMinute: 1}
";
    let p = plan(text);
    assert_eq!(p.name, "from-kubectl");
    assert_eq!(p.namespace, "kpatrol");
    assert_eq!(
        p.labels,
        BTreeMap::from([
            ("team".to_string(), "net".to_string()),
            ("tier".to_string(), "1".to_string())
        ])
    );
}

#[test]
fn names_are_dns_subdomains() {
    let p = plan(&doc("NetReach", SCHED).replace("name: task-1", "name: 1st.reach-check"));
    assert_eq!(p.name, "1st.reach-check");
}

// ---------------------------------------------------------------------------------------
// schedule

#[test]
fn schedule_m_n_is_minutes() {
    let p = plan(&doc(
        "NetReach",
        "  schedule:\n    schedule: \"2 5\"\n    roundTimeoutMinute: 5\n    roundNumber: 3\n",
    ));
    assert_eq!(
        p.schedule,
        Schedule::Minutes {
            first_after_min: 2,
            every_min: 5
        }
    );
    assert_eq!(p.schedule.interval(), Some(secs(300)));
    assert_eq!(p.schedule.to_string(), "2 5");
    assert_eq!(p.round_timeout, secs(300));
    assert_eq!(p.rounds, 3);
}

#[test]
fn schedule_unquoted_m_n() {
    // `schedule: 0 1` is a string in YAML; kdoctor's own examples write it that way.
    let p = plan(&doc(
        "NetReach",
        "  schedule:\n    schedule: 0 1\n    roundTimeoutMinute: 1\n",
    ));
    assert_eq!(
        p.schedule,
        Schedule::Minutes {
            first_after_min: 0,
            every_min: 1
        }
    );
    assert_eq!(p.round_timeout, secs(60));
}

#[test]
fn schedule_five_field_cron() {
    let p = plan(&doc(
        "AppHttpHealthy",
        "  schedule:\n    schedule: \"*/5 * * * *\"\n    roundTimeoutMinute: 4\n  target: {host: \"http://a.example.com\", method: GET}\n",
    ));
    assert_eq!(p.schedule, Schedule::Cron("*/5 * * * *".into()));
    assert_eq!(p.round_timeout, secs(240));
    assert_eq!(p.rounds, 1, "roundNumber defaults to 1");
}

#[test]
fn schedule_cron_keeps_the_crd_default_round_timeout_of_60_minutes() {
    let p = plan(&doc("NetReach", "  schedule:\n    schedule: \"0 * * * *\"\n"));
    assert_eq!(p.schedule, Schedule::Cron("0 * * * *".into()));
    assert_eq!(p.round_timeout, secs(3600));
    assert_eq!(p.rounds, 1);
}

#[test]
fn round_number_minus_one_runs_forever() {
    let p = plan(&doc(
        "NetReach",
        "  schedule:\n    schedule: \"0 1\"\n    roundTimeoutMinute: 1\n    roundNumber: -1\n",
    ));
    assert_eq!(p.rounds, -1);
}

#[test]
fn round_timeout_minute_maps_to_round_timeout() {
    for (n, every) in [(1u64, 1u64), (7, 10), (30, 30)] {
        let p = plan(&doc(
            "NetReach",
            &format!("  schedule:\n    schedule: \"0 {every}\"\n    roundTimeoutMinute: {n}\n"),
        ));
        assert_eq!(p.round_timeout, secs(n * 60));
    }
}

// ---------------------------------------------------------------------------------------
// request → pressure

#[test]
fn request_values_map_to_pressure() {
    let p = ahh_basic("  request:\n    qps: 42\n    durationInSecond: 7\n    perRequestTimeoutInMS: 1500\n");
    assert_eq!(p.pressure.rate, Rate::Fixed(42.0));
    assert_eq!(p.pressure.duration, secs(7));
    assert_eq!(p.pressure.timeout, ms(1500));
    assert_eq!(
        p.pressure.connections,
        Connections::Reuse,
        "kdoctor keeps connections alive"
    );

    let p = net_reach("  request: {qps: 19, durationInSecond: 60, perRequestTimeoutInMS: 60000}\n");
    assert_eq!(p.pressure.rate, Rate::Fixed(19.0));
    assert_eq!(p.pressure.duration, secs(60));
    assert_eq!(p.pressure.timeout, ms(60000));
}

#[test]
fn request_present_gets_the_crd_defaults_5_2_5() {
    for p in [ahh_basic("  request: {}\n"), net_reach("  request: {}\n")] {
        assert_eq!(p.pressure.rate, Rate::Fixed(5.0), "{}", p.kind);
        assert_eq!(p.pressure.duration, secs(2), "{}", p.kind);
        assert_eq!(p.pressure.timeout, ms(5), "{}: the CRD default is 5 ms", p.kind);
    }
    // Some fields given: the others still come from the CRD.
    let p = ahh_basic("  request:\n    qps: 50\n");
    assert_eq!(p.pressure.rate, Rate::Fixed(50.0));
    assert_eq!(p.pressure.duration, secs(2));
    assert_eq!(p.pressure.timeout, ms(5));
    // ... and the 5 ms is pointed out, as a warning only.
    let w = warnings(&doc("NetReach", &format!("{SCHED}  request:\n    qps: 5\n")));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("warning: spec.request.perRequestTimeoutInMS: not set: kdoctor's CRD default is 5 ms"),
        "{}",
        w[0]
    );
}

#[test]
fn request_absent_gets_the_webhook_defaults_10_2_500() {
    for p in [ahh_basic(""), net_reach("")] {
        assert_eq!(p.pressure.rate, Rate::Fixed(10.0), "{}", p.kind);
        assert_eq!(p.pressure.duration, secs(2), "{}", p.kind);
        assert_eq!(p.pressure.timeout, ms(500), "{}", p.kind);
        assert_eq!(p.pressure.connections, Connections::Reuse);
    }
    assert!(warnings(&doc("NetReach", SCHED)).is_empty());
}

#[test]
fn netdns_request_gets_the_crd_defaults() {
    let p = netdns("    protocol: udp\n", "    targetUser: {server: 10.0.0.10}\n");
    assert_eq!(p.pressure.rate, Rate::Fixed(5.0));
    assert_eq!(p.pressure.duration, secs(2));
    assert_eq!(p.pressure.timeout, ms(5));
    let p = netdns(
        "    qps: 99\n    durationInSecond: 10\n    perRequestTimeoutInMS: 200\n",
        "    targetUser: {server: 10.0.0.10}\n",
    );
    assert_eq!(p.pressure.rate, Rate::Fixed(99.0));
    assert_eq!(p.pressure.duration, secs(10));
    assert_eq!(p.pressure.timeout, ms(200));
}

// ---------------------------------------------------------------------------------------
// expect

#[test]
fn expect_absent_gets_the_webhook_default_success_rate_only() {
    for p in [ahh_basic(""), net_reach("")] {
        assert_eq!(p.expect.success_rate, Some(1.0), "{}", p.kind);
        assert_eq!(
            p.expect.latency,
            LatencyLimits::default(),
            "{}: no mean delay limit",
            p.kind
        );
        assert!(p.expect.codes.is_empty(), "{}: any status counts", p.kind);
        assert!(p.expect.all_sent, "{}: unsent requests fail the target", p.kind);
    }
}

#[test]
fn expect_present_gets_the_crd_defaults() {
    for p in [
        ahh_basic("  expect: {}\n"),
        net_reach("  expect: {}\n"),
        netdns_user("      server: 10.0.0.10\n"),
    ] {
        assert_eq!(p.expect.success_rate, Some(1.0), "{}", p.kind);
        assert_eq!(
            p.expect.latency.mean,
            Some(ms(5000)),
            "{}: meanAccessDelayInMs 5000",
            p.kind
        );
        assert_eq!(p.expect.latency.p50, None);
        assert_eq!(p.expect.latency.p99, None);
        assert_eq!(p.expect.latency.max, None);
        assert!(p.expect.codes.is_empty(), "{}", p.kind);
        assert!(p.expect.all_sent);
    }
}

#[test]
fn expect_values_map_with_kdoctor_meaning() {
    let p = ahh_basic("  expect:\n    successRate: 0.95\n    meanAccessDelayInMs: 1500\n    statusCode: 204\n");
    let want = Expect {
        success_rate: Some(0.95),
        latency: LatencyLimits {
            mean: Some(ms(1500)),
            ..Default::default()
        },
        codes: vec![CodeRange { from: 204, to: 204 }],
        all_sent: true,
        code_kind: CodeKind::Http,
        whole_ms: true,
        min_rate: None,
    };
    assert_eq!(p.expect, want);
    assert_eq!(
        http_target(&p).expect,
        want,
        "the one target carries the same expectations"
    );

    // successRate 0 and integer forms are fine.
    let p = ahh_basic("  expect: {successRate: 0, meanAccessDelayInMs: 1}\n");
    assert_eq!(p.expect.success_rate, Some(0.0));
    assert_eq!(p.expect.latency.mean, Some(ms(1)));
}

#[test]
fn no_status_code_means_any_status_counts() {
    let p = ahh_basic("  expect:\n    successRate: 1\n    meanAccessDelayInMs: 100\n");
    assert!(p.expect.codes.is_empty());
    assert!(http_target(&p).expect.codes.is_empty());
}

#[test]

fn status_code_is_ignored_outside_app_http_healthy() {
    let p = net_reach("  expect: {statusCode: 200}\n");
    assert!(p.expect.codes.is_empty(), "{:?}", p.expect.codes);
    let p = plan(&doc(
        "Netdns",
        &format!(
            "{SCHED}  request: {{perRequestTimeoutInMS: 500}}\n  expect: {{statusCode: 200}}\n  target: {{targetUser: {{server: 10.0.0.10}}}}\n"
        ),
    ));
    assert!(p.expect.codes.is_empty(), "{:?}", p.expect.codes);
}

// ---------------------------------------------------------------------------------------
// agentSpec → agents

#[test]
fn no_agent_spec_runs_on_every_node() {
    for p in [ahh_basic(""), net_reach(""), netdns_user("      server: 10.0.0.10\n")] {
        assert_eq!(
            p.agents.placement,
            Placement::PerNode {
                node_selector: BTreeMap::new()
            },
            "{}",
            p.kind
        );
        assert!(!p.agents.host_network);
        assert!(p.agents.annotations.is_empty());
        assert!(p.agents.passthrough.is_empty());
    }
}

#[test]
fn agent_spec_daemonset_is_per_node() {
    for spec in [
        "  agentSpec: {kind: DaemonSet}\n",
        "  agentSpec: {}\n",
        "  agentSpec:\n    hostNetwork: false\n",
    ] {
        let p = net_reach(spec);
        assert_eq!(
            p.agents.placement,
            Placement::PerNode {
                node_selector: BTreeMap::new()
            },
            "{spec}"
        );
    }
    // deploymentReplicas is ignored for a DaemonSet.
    let p = net_reach("  agentSpec: {kind: DaemonSet, deploymentReplicas: 5}\n");
    assert!(matches!(p.agents.placement, Placement::PerNode { .. }));
}

#[test]
fn agent_spec_deployment_is_a_count() {
    let p = ahh_basic("  agentSpec:\n    kind: Deployment\n    deploymentReplicas: 3\n");
    assert_eq!(p.agents.placement, Placement::Count(3));
    let p = net_reach("  agentSpec: {kind: Deployment, deploymentReplicas: 1}\n");
    assert_eq!(p.agents.placement, Placement::Count(1));
}

#[test]
fn agent_spec_host_network_and_annotation() {
    let p = net_reach(
        "  agentSpec:\n    hostNetwork: true\n    annotation:\n      example.com/owner: net-team\n      sidecar.istio.io/inject: \"false\"\n",
    );
    assert!(p.agents.host_network);
    assert_eq!(
        p.agents.annotations,
        BTreeMap::from([
            ("example.com/owner".to_string(), "net-team".to_string()),
            ("sidecar.istio.io/inject".to_string(), "false".to_string()),
        ])
    );
    assert!(p.agents.passthrough.is_empty());
}

#[test]
fn agent_spec_resources_affinity_env_pass_through() {
    let p = net_reach(
        r#"  agentSpec:
    terminationGracePeriodMinutes: 5
    resources:
      limits: {cpu: 500m, memory: 256Mi}
      requests: {cpu: 100m}
    env:
    - name: GODEBUG
      value: netdns=go
    - name: FROM_FIELD
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions:
            - {key: kubernetes.io/os, operator: In, values: [linux]}
"#,
    );
    assert_eq!(
        p.agents.passthrough.get("resources"),
        Some(&json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}}))
    );
    assert_eq!(
        p.agents.passthrough.get("env"),
        Some(&json!([
            {"name": "GODEBUG", "value": "netdns=go"},
            {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ]))
    );
    assert_eq!(
        p.agents.passthrough.get("affinity"),
        Some(
            &json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
            ]}}})
        )
    );
    assert_eq!(p.agents.passthrough.len(), 3);
}

// ---------------------------------------------------------------------------------------
// AppHttpHealthy target

fn host(h: &str) -> String {
    http_target(&ahh(&format!("    host: \"{h}\"\n    method: GET\n"), ""))
        .url
        .clone()
}

#[test]
fn host_gets_http_prefix_when_the_text_lacks_http() {
    assert_eq!(host("1.2.3.4:80/?task=x"), "http://1.2.3.4:80/?task=x");
    assert_eq!(host("10.0.0.1"), "http://10.0.0.1");
    assert_eq!(host("myservice"), "http://myservice");
    assert_eq!(
        host("myservice.ns.svc.cluster.local:8080/healthz"),
        "http://myservice.ns.svc.cluster.local:8080/healthz"
    );
    assert_eq!(host("[fd00::1]:8080/x"), "http://[fd00::1]:8080/x");
    // Text with "http" in it is kept as written.
    assert_eq!(host("http://1.2.3.4:80/?task=x"), "http://1.2.3.4:80/?task=x");
    assert_eq!(
        host("https://www.example.com/path?q=1"),
        "https://www.example.com/path?q=1"
    );
    assert_eq!(host("http://[::1]:8080/"), "http://[::1]:8080/");
    assert_eq!(host("http://a_b.example.com/"), "http://a_b.example.com/");
}

#[test]
fn host_rule_is_a_substring_test() {
    // kdoctor's webhook tests for the substring "http", not a scheme: `httpbin.org` gets no
    // prefix and is then not a URL (kdoctor would accept it and fail at run time).
    let text = doc(
        "AppHttpHealthy",
        &format!("{SCHED}  target:\n    host: httpbin.org\n    method: GET\n"),
    );
    let ft = load_str(Path::new("t.yaml"), &text).unwrap();
    let errs: Vec<String> = ft.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("t.yaml:10:11: spec.target.host: `httpbin.org` is not a valid URL"),
        "{}",
        errs[0]
    );
    assert!(ft.plans.is_empty());
}

#[test]
fn method_maps_unchanged() {
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"] {
        let p = ahh(&format!("    host: http://10.0.0.1/\n    method: {m}\n"), "");
        assert_eq!(http_target(&p).method, m);
    }
}

#[test]
fn http2_true_is_auto_false_is_http1() {
    let v = |extra: &str| {
        http_target(&ahh(
            &format!("    host: https://a.example.com/\n    method: GET\n{extra}"),
            "",
        ))
        .version
    };
    assert_eq!(v("    http2: true\n"), HttpVersion::Auto);
    assert_eq!(v("    http2: false\n"), HttpVersion::Http1);
    assert_eq!(v(""), HttpVersion::Http1, "kdoctor's default is false");
}

#[test]
fn header_list_keeps_the_full_value_after_the_first_colon() {
    let p = ahh(
        "    host: http://10.0.0.1/\n    method: POST\n    header:\n    - \"Content-Type: application/json\"\n    - \"Authorization: Bearer a:b\"\n    - \"X-Empty:\"\n    - \"x-lower:  spaced value  \"\n",
        "",
    );
    let inline = |name: &str, value: &str| Header {
        name: name.into(),
        value: HeaderValue::Inline(value.into()),
    };
    assert_eq!(
        http_target(&p).headers,
        vec![
            inline("Content-Type", "application/json"),
            // kdoctor loses everything after a second colon; kpatrol keeps it.
            inline("Authorization", "Bearer a:b"),
            inline("X-Empty", ""),
            inline("x-lower", "spaced value"),
        ]
    );
    // No header list: no headers.
    assert!(http_target(&ahh_basic("")).headers.is_empty());
}

#[test]
fn body_configmap_is_the_json_of_its_data() {
    let p = ahh(
        "    host: http://10.0.0.1/\n    method: POST\n    bodyConfigmapName: kdoctor-body\n    bodyConfigmapNamespace: kdoctor\n",
        "",
    );
    assert_eq!(
        http_target(&p).body,
        Body::ConfigMapJson {
            name: "kdoctor-body".into(),
            namespace: "kdoctor".into()
        }
    );
    assert_eq!(http_target(&ahh_basic("")).body, Body::None);
    // A namespace alone names no body.
    let p = ahh(
        "    host: http://10.0.0.1/\n    method: POST\n    bodyConfigmapNamespace: kdoctor\n",
        "",
    );
    assert_eq!(http_target(&p).body, Body::None);
}

#[test]
fn tls_secret_verifies_only_with_a_ca() {
    let p = ahh(
        "    host: https://10.0.0.1/\n    method: GET\n    tlsSecretName: https-client-cert\n    tlsSecretNamespace: kdoctor\n",
        "",
    );
    assert_eq!(
        http_target(&p).tls,
        Tls {
            secret: Some("https-client-cert".into()),
            verify_only_with_ca: true,
            ..Default::default()
        }
    );
    assert_eq!(http_target(&ahh_basic("")).tls, Tls::default());
}

#[test]
fn redirects_are_followed_like_go() {
    let t = http_target(&ahh_basic("")).clone();
    assert_eq!(t.redirects, 10);
    assert_eq!(t.name, "HttpAppHealthy target");
}

#[test]
fn enable_latency_metric_is_accepted_on_every_kind() {
    ahh(
        "    host: http://10.0.0.1/\n    method: GET\n    enableLatencyMetric: true\n",
        "",
    );
    net_reach("  target: {enableLatencyMetric: true}\n");
    netdns(
        "    perRequestTimeoutInMS: 500\n",
        "    enableLatencyMetric: true\n    targetUser: {server: 10.0.0.10}\n",
    );
}

#[test]
fn full_app_http_healthy_maps_every_field() {
    let text = "\
apiVersion: kdoctor.io/v1beta1
kind: AppHttpHealthy
metadata:
  name: https-post
spec:
  agentSpec:
    kind: Deployment
    deploymentReplicas: 2
    hostNetwork: true
    annotation: {a: b}
    terminationGracePeriodMinutes: 1
  schedule:
    schedule: \"1 2\"
    roundTimeoutMinute: 2
    roundNumber: 4
  target:
    host: https://10.6.172.20:9443/kdoctoragent?task=x
    method: PUT
    http2: true
    enableLatencyMetric: true
    header: [\"Content-Type: application/json\"]
    bodyConfigmapName: body
    bodyConfigmapNamespace: kdoctor
    tlsSecretName: tls
    tlsSecretNamespace: kdoctor
  request:
    qps: 10
    durationInSecond: 10
    perRequestTimeoutInMS: 3000
  expect:
    successRate: 1
    meanAccessDelayInMs: 10000
    statusCode: 200
";
    let p = plan(text);
    let target = HttpTarget {
        name: "HttpAppHealthy target".into(),
        url: "https://10.6.172.20:9443/kdoctoragent?task=x".into(),
        method: "PUT".into(),
        headers: vec![Header {
            name: "Content-Type".into(),
            value: HeaderValue::Inline("application/json".into()),
        }],
        body: Body::ConfigMapJson {
            name: "body".into(),
            namespace: "kdoctor".into(),
        },
        tls: Tls {
            secret: Some("tls".into()),
            verify_only_with_ca: true,
            ..Default::default()
        },
        version: HttpVersion::Auto,
        redirects: 10,
        expect: Expect {
            success_rate: Some(1.0),
            latency: LatencyLimits {
                mean: Some(ms(10_000)),
                ..Default::default()
            },
            codes: vec![CodeRange { from: 200, to: 200 }],
            all_sent: true,
            code_kind: CodeKind::Http,
            whole_ms: true,
            min_rate: None,
        },
    };
    assert_eq!(
        p.mode,
        Mode::Http(HttpPlan {
            targets: vec![target.clone()]
        })
    );
    assert_eq!(p.expect, target.expect);
    assert_eq!(
        p.schedule,
        Schedule::Minutes {
            first_after_min: 1,
            every_min: 2
        }
    );
    assert_eq!(p.round_timeout, secs(120));
    assert_eq!(p.rounds, 4);
    assert_eq!(p.agents.placement, Placement::Count(2));
    assert!(p.agents.host_network);
    assert_eq!(p.agents.annotations.get("a").map(String::as_str), Some("b"));
    assert_eq!(p.pressure.rate, Rate::Fixed(10.0));
    assert_eq!(p.pressure.duration, secs(10));
    assert_eq!(p.pressure.timeout, ms(3000));
}

// ---------------------------------------------------------------------------------------
// NetReach target

#[test]
fn net_reach_target_present_gets_the_crd_defaults() {
    let p = net_reach("  target: {}\n");
    assert_eq!(
        reach(&p),
        &ReachPlan {
            ipv4: true,
            ipv6: false,
            endpoint: true,
            multus_interface: false,
            cluster_ip: true,
            node_port: true,
            load_balancer: false,
            ingress: false,
            peers: Peers::All,
            ingress_route: None,
        }
    );
}

#[test]
fn net_reach_target_absent_gets_the_webhook_defaults() {
    // The webhook enables both families as the chart ships (enableIPv4 and enableIPv6 true).
    let p = net_reach("");
    assert_eq!(
        reach(&p),
        &ReachPlan {
            ipv4: true,
            ipv6: true,
            endpoint: true,
            multus_interface: false,
            cluster_ip: true,
            node_port: true,
            load_balancer: false,
            ingress: false,
            peers: Peers::All,
            ingress_route: None,
        }
    );
}

#[test]
fn net_reach_target_flags_map_one_to_one() {
    let all = |v: bool| {
        net_reach(&format!(
            "  target:\n    ipv4: {v}\n    ipv6: {v}\n    endpoint: {v}\n    multusInterface: {v}\n    clusterIP: {v}\n    nodePort: {v}\n    loadBalancer: {v}\n    ingress: {v}\n    enableLatencyMetric: {v}\n"
        ))
    };
    for v in [true, false] {
        let p = all(v);
        assert_eq!(
            reach(&p),
            &ReachPlan {
                ipv4: v,
                ipv6: v,
                endpoint: v,
                multus_interface: v,
                cluster_ip: v,
                node_port: v,
                load_balancer: v,
                ingress: v,
                peers: Peers::All,
                ingress_route: None,
            }
        );
    }
    // One flag at a time, the others at their defaults.
    let p = net_reach("  target: {ingress: true}\n");
    assert!(reach(&p).ingress);
    assert!(reach(&p).ipv4 && !reach(&p).ipv6 && reach(&p).cluster_ip);
    let p = net_reach("  target: {nodePort: false}\n");
    assert!(!reach(&p).node_port);
    assert!(reach(&p).endpoint);
    let p = net_reach("  target: {ipv6: true, ipv4: false}\n");
    assert!(reach(&p).ipv6 && !reach(&p).ipv4);
}

#[test]
fn net_reach_full_example() {
    let text = "\
apiVersion: kdoctor.io/v1beta1
kind: NetReach
metadata:
  name: netreach
spec:
  agentSpec:
    kind: DaemonSet
    hostNetwork: false
  schedule:
    roundTimeoutMinute: 1
    schedule: 0 1
    roundNumber: 2
  request:
    durationInSecond: 10
    perRequestTimeoutInMS: 1000
    qps: 10
  target:
    clusterIP: true
    endpoint: true
    ingress: false
    ipv4: true
    ipv6: false
    loadBalancer: false
    multusInterface: false
    nodePort: true
  expect:
    meanAccessDelayInMs: 1500
    successRate: 1
";
    let p = plan(text);
    assert_eq!(p.rounds, 2);
    assert_eq!(p.round_timeout, secs(60));
    assert_eq!(p.pressure.rate, Rate::Fixed(10.0));
    assert_eq!(p.pressure.duration, secs(10));
    assert_eq!(p.pressure.timeout, ms(1000));
    assert_eq!(p.expect.latency.mean, Some(ms(1500)));
    assert_eq!(p.expect.success_rate, Some(1.0));
    assert!(p.expect.codes.is_empty());
    let r = reach(&p);
    assert!(r.cluster_ip && r.endpoint && r.ipv4 && r.node_port);
    assert!(!r.ingress && !r.ipv6 && !r.load_balancer && !r.multus_interface);
}

// ---------------------------------------------------------------------------------------
// Netdns

#[test]
fn netdns_target_user_is_an_address_with_record_type_from_the_server() {
    let p = netdns_user("      server: 172.18.0.10\n      port: 5353\n");
    let d = dns(&p);
    assert!(
        d.targets.iter().all(|t| t.expect.codes.is_empty()),
        "any reply within the timeout is a success"
    );
    assert_eq!(
        d.targets[0].name,
        "typeA_172.18.0.10:5353_kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        d.targets,
        vec![target(
            DnsServer::Address("172.18.0.10:5353".parse::<SocketAddr>().unwrap()),
            DnsProtocol::Udp,
            vec!["kubernetes.default.svc.cluster.local".into()],
            None
        )]
    );
}

#[test]
fn netdns_target_user_port_defaults_to_53_and_ipv6_servers_work() {
    let p = netdns_user("      server: 10.0.0.10\n");
    assert_eq!(
        dns(&p).targets[0].server,
        DnsServer::Address("10.0.0.10:53".parse().unwrap())
    );
    let p = netdns_user("      server: \"fd00::10\"\n");
    assert_eq!(
        dns(&p).targets[0].server,
        DnsServer::Address("[fd00::10]:53".parse().unwrap())
    );
    assert_eq!(dns(&p).targets[0].queries[0].record_type, None);
}

#[test]
fn netdns_target_dns_service_ipv4_and_ipv6() {
    let p = netdns(
        "    perRequestTimeoutInMS: 500\n",
        "    targetDns:\n      serviceName: coredns\n      serviceNamespace: kube-system\n      testIPv4: true\n      testIPv6: true\n",
    );
    let svc = |ipv4: bool, ipv6: bool| DnsServer::ClusterService {
        name: Some("coredns".into()),
        namespace: "kube-system".into(),
        ipv4,
        ipv6,
        port: 53,
    };
    let names = vec!["kubernetes.default.svc.cluster.local".to_string()];
    assert_eq!(
        dns(&p).targets,
        vec![
            target(svc(true, false), DnsProtocol::Udp, names.clone(), Some("A".into())),
            target(svc(false, true), DnsProtocol::Udp, names, Some("AAAA".into())),
        ]
    );
    // named by the Service until the pod finds its address, then as kdoctor names them
    let named: Vec<_> = dns(&p)
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.named_after_server.clone()))
        .collect();
    let domain = "_kubernetes.default.svc.cluster.local";
    assert_eq!(
        named,
        [
            (
                format!("typeA_coredns.kube-system:53{domain}"),
                Some(("typeA_".to_string(), domain.to_string()))
            ),
            (
                format!("typeAAAA_coredns.kube-system:53{domain}"),
                Some(("typeAAAA_".to_string(), domain.to_string()))
            ),
        ]
    );
}

#[test]
fn netdns_target_dns_defaults_ipv4_only_and_all_coredns_services() {
    let p = netdns("    perRequestTimeoutInMS: 500\n", "    targetDns: {}\n");
    assert_eq!(
        dns(&p).targets,
        vec![target(
            DnsServer::ClusterService {
                name: None,
                namespace: "kube-system".into(),
                ipv4: true,
                ipv6: false,
                port: 53,
            },
            DnsProtocol::Udp,
            vec!["kubernetes.default.svc.cluster.local".into()],
            Some("A".into())
        )]
    );
    // IPv6 only.
    let p = netdns(
        "    perRequestTimeoutInMS: 500\n",
        "    targetDns: {serviceName: dns6, serviceNamespace: infra, testIPv4: false, testIPv6: true}\n",
    );
    let t = &dns(&p).targets;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].queries[0].record_type.as_deref(), Some("AAAA"));
    assert_eq!(
        t[0].server,
        DnsServer::ClusterService {
            name: Some("dns6".into()),
            namespace: "infra".into(),
            ipv4: false,
            ipv6: true,
            port: 53,
        }
    );
    // kdoctor queries the cluster DNS on port 53 over tcp-tls too (a native DnsCheck's
    // Service over TLS takes 853)
    let p = netdns(
        "    perRequestTimeoutInMS: 500\n    protocol: tcp-tls\n",
        "    targetDns: {serviceName: coredns, serviceNamespace: kube-system}\n",
    );
    assert!(
        matches!(&dns(&p).targets[0].server, DnsServer::ClusterService { port: 53, .. }),
        "{:?}",
        dns(&p).targets[0].server
    );
    // Neither family: no target at all.
    let p = netdns("    perRequestTimeoutInMS: 500\n", "    targetDns: {testIPv4: false}\n");
    assert!(dns(&p).targets.is_empty());
}

#[test]
fn netdns_without_target_user_or_target_dns_has_no_targets() {
    // kdoctor accepts this; the round then has nothing to query and succeeds (quirk).
    let p = netdns("    perRequestTimeoutInMS: 500\n", "    enableLatencyMetric: false\n");
    assert!(dns(&p).targets.is_empty());
}

#[test]
fn netdns_domain_default_and_custom() {
    let p = netdns_user("      server: 10.0.0.10\n");
    assert_eq!(
        dns(&p).targets[0]
            .queries
            .iter()
            .map(|q| q.name.clone())
            .collect::<Vec<_>>(),
        vec!["kubernetes.default.svc.cluster.local".to_string()]
    );
    let p = netdns(
        "    perRequestTimeoutInMS: 500\n    domain: \"example.com\"\n",
        "    targetDns: {testIPv6: true}\n",
    );
    for t in &dns(&p).targets {
        assert_eq!(
            t.queries.iter().map(|q| q.name.clone()).collect::<Vec<_>>(),
            vec!["example.com".to_string()]
        );
    }
    assert_eq!(dns(&p).targets.len(), 2);
}

#[test]
fn netdns_protocols() {
    for (text, want) in [
        ("udp", DnsProtocol::Udp),
        ("tcp", DnsProtocol::Tcp),
        ("tcp-tls", DnsProtocol::Tls),
    ] {
        let p = netdns(
            &format!("    perRequestTimeoutInMS: 500\n    protocol: {text}\n"),
            "    targetUser: {server: 10.0.0.10, port: 853}\n",
        );
        assert_eq!(dns(&p).targets[0].protocol, want, "{text}");
    }
    // The CRD default is udp, for targetDns too.
    let p = netdns("    perRequestTimeoutInMS: 500\n", "    targetDns: {}\n");
    assert_eq!(dns(&p).targets[0].protocol, DnsProtocol::Udp);
}

#[test]
fn netdns_source_agent_node_selector_is_accepted() {
    let text = doc(
        "Netdns",
        &format!(
            "{SCHED}  sourceAgentNodeSelector:\n    matchLabels: {{kubernetes.io/os: linux}}\n    matchExpressions: [{{key: a, operator: Exists}}]\n  request: {{perRequestTimeoutInMS: 500}}\n  expect: {{}}\n  target: {{targetUser: {{server: 10.0.0.10}}}}\n"
        ),
    );
    let p = plan(&text);
    assert_eq!(
        p.agents.placement,
        Placement::PerNode {
            node_selector: BTreeMap::new()
        },
        "declared by kdoctor's schema but unused"
    );
}

#[test]
fn netdns_full_example() {
    let text = "\
apiVersion: kdoctor.io/v1beta1
kind: Netdns
metadata:
  name: netdns-e2e
spec:
  agentSpec:
    kind: Deployment
    deploymentReplicas: 2
  schedule:
    roundTimeoutMinute: 1
    schedule: 0 1
    roundNumber: -1
  target:
    targetUser:
      server: 172.41.54.75
      port: 53
    enableLatencyMetric: true
  request:
    durationInSecond: 10
    qps: 20
    perRequestTimeoutInMS: 500
    domain: \"kube-dns.kube-system.svc.cluster.local\"
    protocol: tcp
  expect:
    successRate: 0.9
    meanAccessDelayInMs: 200
";
    let p = plan(text);
    assert_eq!(p.kind, "Netdns");
    assert_eq!(p.rounds, -1);
    assert_eq!(p.agents.placement, Placement::Count(2));
    assert_eq!(p.pressure.rate, Rate::Fixed(20.0));
    assert_eq!(p.pressure.duration, secs(10));
    assert_eq!(p.pressure.timeout, ms(500));
    assert_eq!(p.expect.success_rate, Some(0.9));
    assert_eq!(p.expect.latency.mean, Some(ms(200)));
    assert_eq!(
        dns(&p).targets,
        vec![target(
            DnsServer::Address("172.41.54.75:53".parse().unwrap()),
            DnsProtocol::Tcp,
            vec!["kube-dns.kube-system.svc.cluster.local".into()],
            None
        )]
    );
}

// ---------------------------------------------------------------------------------------
// status and other things kubectl prints

const STATUS: &str = "\
status:
  doneRound: 1
  expectedRound: 1
  finish: true
  finishTime: \"2024-11-24T01:02:03Z\"
  lastRoundStatus: succeed
  history:
  - roundNumber: 1
    status: succeed
    startTimeStamp: \"2024-11-24T01:00:00Z\"
    endTimeStamp: \"2024-11-24T01:01:00Z\"
    deadLineTimeStamp: \"2024-11-24T01:01:00Z\"
    duration: 15.46s
    expectedActorNumber: 2
    succeedAgentNodeList: [node-1, node-2]
    failedAgentNodeList: []
    notReportAgentNodeList: []
  resource:
    runtimeName: kdoctor-agent
    runtimeType: DaemonSet
    serviceNameV4: kdoctor-agent-ipv4
    runtimeStatus: created
";

#[test]
fn status_block_is_accepted_and_ignored() {
    for (kind, spec) in [
        (
            "AppHttpHealthy",
            format!("{SCHED}  target: {{host: \"http://10.0.0.1/\", method: GET}}\n"),
        ),
        ("NetReach", SCHED.to_string()),
        (
            "Netdns",
            format!(
                "{SCHED}  request: {{perRequestTimeoutInMS: 500}}\n  expect: {{}}\n  target: {{targetDns: {{}}}}\n"
            ),
        ),
    ] {
        let without = doc(kind, &spec);
        let with = format!("{without}{STATUS}");
        let ft = load_str(Path::new("t.yaml"), &with).unwrap();
        assert!(ft.diagnostics.is_empty(), "{kind}: {:?}", ft.diagnostics);
        assert_eq!(plan(&with), plan(&without), "{kind}: status changes nothing");
    }
    // Even a status that does not match kdoctor's shape is not looked at.
    plan(&format!("{}status: [whatever]\n", doc("NetReach", SCHED)));
}

/// The parts of a kdoctor Netdns target that the mapping decides (name, TLS and
/// expectations are checked by their own tests).
#[derive(Debug, PartialEq)]
struct Target {
    server: DnsServer,
    protocol: DnsProtocol,
    names: Vec<String>,
    record_type: Option<String>,
}

fn target(server: DnsServer, protocol: DnsProtocol, names: Vec<String>, record_type: Option<String>) -> Target {
    Target {
        server,
        protocol,
        names,
        record_type,
    }
}

impl PartialEq<Target> for DnsTarget {
    fn eq(&self, t: &Target) -> bool {
        self.server == t.server
            && self.protocol == t.protocol
            && self.queries.iter().map(|q| q.name.clone()).collect::<Vec<_>>() == t.names
            && self.queries.iter().all(|q| q.record_type == t.record_type)
            && !self.edns
    }
}
