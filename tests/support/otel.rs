//! A real OpenTelemetry pipeline on loopback for the telemetry tests: rotel (a collector)
//! receiving OTLP over gRPC and HTTP and forwarding to a small OTLP sink that records what
//! arrives as JSON lines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, wait_port};

pub struct Pipeline {
    children: Vec<Child>,
    pub grpc: String,
    pub http: String,
    pub out: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test")
}

impl Pipeline {
    pub fn start() -> Pipeline {
        let python = venv().join("bin/python");
        assert!(
            python.exists(),
            "the telemetry tests need .venv-test with rotel, opentelemetry-proto and grpcio (scripts/test installs them)"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("received.jsonl");
        std::fs::write(&out, "").unwrap();
        let (sink_grpc, sink_http, grpc, http) = (free_port(), free_port(), free_port(), free_port());
        let sink = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/otlp_sink.py"))
            .arg(&out)
            .arg(format!("127.0.0.1:{sink_grpc}"))
            .arg(sink_http.to_string())
            .stdout(Stdio::null())
            .stderr(log(dir.path(), "sink.log"))
            .spawn()
            .unwrap();
        let mut children = vec![sink];
        wait_port(sink_grpc, "the OTLP sink", Duration::from_secs(20));
        let rotel = Command::new(&python)
            .args([
                "-c",
                "import rotel,os;print(os.path.join(os.path.dirname(rotel.__file__),'rotel-agent'))",
            ])
            .output()
            .unwrap();
        let rotel = String::from_utf8(rotel.stdout).unwrap().trim().to_string();
        let collector = Command::new(rotel)
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http}"),
            ])
            .args([
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                &format!("http://127.0.0.1:{sink_grpc}"),
                "--otlp-exporter-protocol",
                "grpc",
            ])
            .args(["--batch-timeout", "100ms"])
            .stdout(log(dir.path(), "rotel.out"))
            .stderr(log(dir.path(), "rotel.log"))
            .spawn()
            .unwrap();
        children.push(collector);
        wait_port(grpc, "rotel (gRPC)", Duration::from_secs(20));
        wait_port(http, "rotel (HTTP)", Duration::from_secs(20));
        Pipeline {
            children,
            grpc: format!("http://127.0.0.1:{grpc}"),
            http: format!("http://127.0.0.1:{http}"),
            out,
            dir,
        }
    }

    /// Every export request received so far.
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What the sink and the collector wrote, their last lines, for a failure's message.
    fn logs(&self) -> String {
        let dir = self.dir.path();
        ["sink.log", "rotel.out", "rotel.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("--- {name} (last 30 lines)\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (bounded) until `ready` holds for what arrived.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if ready(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited 20 s for {what}; received: {got:#?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50)); // polling the sink's file, bounded
        }
    }
}

/// A log file of the pipeline's, for a child's output.
fn log(dir: &Path, name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(name)).unwrap())
}

/// Every span in what arrived (rotel re-batches: walk every resource).
pub fn spans(received: &[Value]) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for r in received.iter().filter(|r| r["signal"] == "traces") {
        for rs in r["request"]["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push((rs["resource"].clone(), s.clone()));
                }
            }
        }
    }
    out
}

/// Every metric data point: (metric name, point).
pub fn points(received: &[Value]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for r in received.iter().filter(|r| r["signal"] == "metrics") {
        for rm in r["request"]["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    let name = m["name"].as_str().unwrap().to_string();
                    for kind in ["sum", "gauge", "histogram"] {
                        for p in m[kind]["dataPoints"].as_array().into_iter().flatten() {
                            out.push((name.clone(), p.clone()));
                        }
                    }
                }
            }
        }
    }
    out
}

/// An attribute's value from an OTLP attribute list.
pub fn attr(attrs: &Value, key: &str) -> Option<Value> {
    attrs.as_array()?.iter().find(|a| a["key"] == key).map(|a| {
        let v = &a["value"];
        v.get("stringValue")
            .or(v.get("intValue"))
            .or(v.get("doubleValue"))
            .or(v.get("boolValue"))
            .cloned()
            .unwrap_or(Value::Null)
    })
}
