//! The Grafana dashboard and the collector example: every query names only metrics kpatrol
//! emits (as they arrive in Prometheus through the collector), the ConfigMap builds with
//! kustomize and passes the schema, the collector example has the pipeline it describes.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use kpatrol::telemetry::names::*;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Prometheus names the collector's OTLP→Prometheus translation gives kpatrol's metrics.
fn prometheus_names() -> Vec<String> {
    vec![
        format!("{}_total", METRIC_REQUESTS.replace('.', "_")),
        format!("{}_seconds_bucket", METRIC_REQUEST_DURATION.replace('.', "_")),
        format!("{}_seconds_count", METRIC_REQUEST_DURATION.replace('.', "_")),
        format!("{}_seconds", METRIC_LATENCY.replace('.', "_")),
        METRIC_SUCCESS_RATIO.replace('.', "_"),
        format!("{}_seconds", METRIC_ROUND_DURATION.replace('.', "_")),
        METRIC_ROUND_VERDICT.replace('.', "_"),
        METRIC_CHECK.replace('.', "_"),
    ]
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if (k == "expr" || k == "query") && x.is_string() {
                    out.push(x.as_str().unwrap().to_string());
                }
                exprs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_queries_only_metrics_kpatrol_emits() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("kustomize/observability/kpatrol-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "kpatrol-rounds");
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(all.len() >= 8, "{all:?}");
    let known = prometheus_names();
    for e in &all {
        let words: Vec<&str> = e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.starts_with("kpatrol_")
                    && !w.starts_with("kpatrol_task")
                    && !w.starts_with("kpatrol_target")
                    && !w.starts_with("kpatrol_outcome")
                    && !w.starts_with("kpatrol_error")
                    && !w.starts_with("kpatrol_quantile")
            })
            .collect();
        assert!(!words.is_empty() || e == "prometheus", "{e}");
        for w in words {
            assert!(
                known.iter().any(|k| k == w),
                "{w} in `{e}` is not a metric kpatrol emits ({known:?})"
            );
        }
    }
    // labels used are attribute names kpatrol sets (dots as underscores)
    for label in [ATTR_TASK, ATTR_TARGET, ATTR_OUTCOME, ATTR_ERROR, ATTR_QUANTILE] {
        assert!(
            all.iter().any(|e| e.contains(&label.replace('.', "_"))),
            "{label} unused"
        );
    }
    let ids: Vec<i64> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let mut dedup = ids.clone();
    dedup.dedup();
    assert_eq!(ids, dedup);
}

#[test]
fn the_dashboard_configmap_builds_and_passes_the_schema() {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join("kustomize/observability"))
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cm: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = cm["data"]["kpatrol-dashboard.json"].as_str().unwrap();
    let _: Value = serde_json::from_str(json).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &out.stdout).unwrap();
    let tool = root().join(".venv-test/bin/kubernetes-validate");
    let v = Command::new(tool)
        .args(["--strict", "--no-warn", "-k", "1.33"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn the_collector_example_receives_otlp_and_keeps_resource_attributes_as_labels() {
    let c: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("kustomize/observability/otel-collector.yaml")).unwrap(),
    )
    .unwrap();
    assert!(c["receivers"]["otlp"]["protocols"]["grpc"].is_object());
    assert!(c["receivers"]["otlp"]["protocols"]["http"].is_object());
    assert_eq!(
        c["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"],
        true
    );
    for pipeline in ["metrics", "traces"] {
        let p = &c["service"]["pipelines"][pipeline];
        assert_eq!(p["receivers"], serde_json::json!(["otlp"]));
        for e in p["exporters"].as_array().unwrap() {
            assert!(c["exporters"][e.as_str().unwrap()].is_object(), "{e}");
        }
    }
}
