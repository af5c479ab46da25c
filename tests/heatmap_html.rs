//! `kpatrol run --html FILE` of a mesh, read by a real browser: a loopback mesh of 4 agents
//! with agent-2 rehearsed as down writes its matrix as a page, which headless Chromium loads
//! from the file and dumps as a DOM; in that DOM every cell to agent-2 fails, agent-2's row
//! is silent, the other cells pass, agent-2 is marked in the headers and named by the
//! findings, and the page loads nothing from anywhere. `--html` of a task that is not a
//! mesh, and a page that cannot be written, exit 2 with the reason.
//!
//! Needs `chromium` (Debian's package; `.ci/run` and `scripts/test` install it).

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::task_file;

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");

/// A NetReach task over the pod path, IPv4 only: 4 agents make 16 cells.
const NETREACH: &str = "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: mesh}\nspec:\n  expect: {meanAccessDelayInMs: 1500, successRate: 1}\n  request: {durationInSecond: 1, perRequestTimeoutInMS: 2000, qps: 10}\n  schedule: {roundNumber: 1, roundTimeoutMinute: 1, schedule: 0 1}\n  target: {endpoint: true, clusterIP: false, nodePort: false, loadBalancer: false, ingress: false, multusInterface: false, ipv4: true, ipv6: false}\n";

/// How long Chromium may take to load and dump a local page (cold, on 2 busy cores).
const CHROMIUM_WITHIN: Duration = Duration::from_secs(90);

/// Loads `page` in headless Chromium, in a profile of its own, and returns the DOM it
/// dumps. Chromium and its helpers run in a process group of their own, killed as a whole
/// when the deadline passes.
fn dump_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("chromium runs (Debian: apt-get install chromium)");
    // Each pipe is drained on a thread of its own so a full pipe never stalls Chromium.
    let drain = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        rx
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + CHROMIUM_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: signalling the process group this test started (its leader's pid).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("chromium did not dump {} within {CHROMIUM_WITHIN:?}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50)); // polling the child, bounded by the deadline
    };
    // Helpers that outlive the browser could hold the pipes open: bounded too.
    let dom = out.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let stderr = err.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    // SAFETY: as above; the group's helpers, if any are left.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    assert!(status.success() && !dom.is_empty(), "chromium: {status}\n{stderr}");
    dom
}

/// An element's start tag as Chromium serialises it: its attributes (entities decoded).
#[derive(Debug)]
struct Tag {
    attrs: BTreeMap<String, String>,
    /// The text right after the start tag, up to the next `<`.
    text: String,
}

impl Tag {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map(String::as_str).unwrap_or("")
    }

    fn classes(&self) -> Vec<&str> {
        self.attr("class").split_whitespace().collect()
    }
}

/// Every `<name …>` start tag of `html`.
fn tags(html: &str, name: &str) -> Vec<Tag> {
    let open = format!("<{name}");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        rest = &rest[at + open.len()..];
        if !rest.starts_with([' ', '>']) {
            continue; // <thead> for <th>
        }
        let mut attrs = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let end = rest.find(['=', ' ', '>']).unwrap();
            let key = rest[..end].to_string();
            rest = &rest[end..];
            let mut value = String::new();
            if let Some(after) = rest.strip_prefix("=\"") {
                let close = after.find('"').unwrap();
                value = decode(&after[..close]);
                rest = &after[close + 1..];
            }
            attrs.insert(key, value);
        }
        let text = decode(&rest[..rest.find('<').unwrap_or(rest.len())]);
        found.push(Tag { attrs, text });
    }
    found
}

fn decode(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn chromium_reads_the_page_of_a_mesh_with_an_agent_down() {
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), "t.yaml", NETREACH);
    let page = dir.path().join("mesh.html");
    let out = Command::new(KPATROL)
        .args(["run", "--agents", "4", "--impair", "2=down", "--html"])
        .arg(&page)
        .arg(&task)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // the round's verdict and output are what they are without --html
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("agent-2  ????  2\n") && stdout.contains("verdict: FAIL\n"),
        "{stdout}"
    );
    // written by renaming a temporary file: nothing else is left beside it
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["mesh.html", "t.yaml"]);

    // the page loads nothing: no address, no src, no stylesheet or script from elsewhere
    let source = std::fs::read_to_string(&page).unwrap();
    for external in ["http://", "https://", "src=", "<link", "<script", "@import", "url("] {
        assert!(!source.contains(external), "{external} in the page:\n{source}");
    }

    let dom = dump_dom(&page);
    let cells = tags(&dom, "td");
    assert_eq!(cells.len(), 16, "4 × 4 cells over pod ipv4:\n{dom}");
    let mut seen = BTreeMap::<&str, u32>::new();
    for c in &cells {
        let (source, target, classes) = (c.attr("data-source"), c.attr("data-target"), c.classes());
        assert_eq!(c.attr("data-path"), "pod ipv4", "{c:?}");
        let state = if source == "agent-2" {
            // its agent never reported: its row is unknown, its cell to itself included
            "silent"
        } else if target == "agent-2" {
            assert!(classes.contains(&"none"), "nothing reached agent-2: {c:?}");
            assert!(c.attr("title").contains("sent 10, ok 0, success 0%"), "{c:?}");
            "fail"
        } else {
            "pass"
        };
        assert!(classes.contains(&state), "{source} → {target} is {state}: {c:?}");
        *seen.entry(state).or_default() += 1;
    }
    assert_eq!(seen, BTreeMap::from([("fail", 3), ("pass", 9), ("silent", 4)]));
    // agent-2 is marked in its row's and its column's header, no other node is
    let headers = tags(&dom, "th");
    for h in &headers {
        let suspect = h.classes().contains(&"suspect");
        assert_eq!(suspect, h.text == "agent-2", "{h:?}");
    }
    assert_eq!(headers.iter().filter(|h| h.text == "agent-2").count(), 2, "{dom}");
    // the findings, as the terminal says them
    let findings: Vec<String> = tags(&dom, "li").into_iter().map(|t| t.text).collect();
    assert_eq!(
        findings,
        [
            "node agent-2: every cell to it failed (3 cells): the node is the likely cause",
            "node agent-2: its agent never reported"
        ]
    );
    assert!(dom.contains("<title>kpatrol mesh mesh: FAIL</title>"), "{dom}");
    assert!(dom.contains("4 nodes, 12 cells, 3 failed"), "{dom}");
    for external in ["http://", "https://", "src="] {
        assert!(!dom.contains(external), "{external} in the DOM:\n{dom}");
    }
}

#[test]
fn html_of_a_task_that_is_not_a_mesh_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(
        dir.path(),
        "h.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: HttpCheck\nmetadata: {name: h}\nspec:\n  targets: [{url: \"http://127.0.0.1:9/\"}]\n",
    );
    let page = dir.path().join("h.html");
    let out = Command::new(KPATROL)
        .args(["run", "--html"])
        .arg(&page)
        .arg(&task)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kpatrol: --html draws a mesh's matrix (Mesh, kdoctor NetReach); h is a HttpCheck"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no round ran");
    assert!(!page.exists());
}

#[test]
fn a_page_that_cannot_be_written_exits_2_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let task = task_file(dir.path(), "t.yaml", NETREACH);
    let page = dir.path().join("no-such-folder").join("mesh.html");
    let out = Command::new(KPATROL)
        .args(["run", "--agents", "2", "--html"])
        .arg(&page)
        .arg(&task)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "kpatrol: cannot write {}: No such file or directory",
            page.display()
        )),
        "{stderr}"
    );
    // the round ran and said its verdict all the same
    assert!(stdout.contains("verdict: PASS\n"), "{stdout}");
}
