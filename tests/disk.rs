//! The disk mode on real files: a folder of the test's own on the machine's disk and one on
//! tmpfs (/dev/shm), every measure counted, nothing left behind after a round, after
//! SIGTERM and after SIGKILL of a `kpatrol run` started by the test; what a killed run
//! left is removed by the next (and what a live one holds is not); a missing folder, a
//! read-only file system and a size above the free space stop the round before anything
//! is written (the last two on a tmpfs mounted by the test in a mount namespace of its
//! own, as root); bad tasks through `kpatrol validate` with the exact messages; render
//! with the volume at the folder, Pod Security kept for emptyDir and PVC, and a warning
//! for hostPath.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kpatrol::report::RoundReport;
use support::{probe_round, task_file};

const KPATROL: &str = env!("CARGO_BIN_EXE_kpatrol");
const MEASURES: [&str; 5] = ["fdatasync", "seqWrite", "seqRead", "randRead", "randWrite"];

fn task(pressure: &str, expect: &str, target: &str) -> String {
    format!(
        "apiVersion: kpatrol.dev/v1\nkind: DiskCheck\nmetadata: {{name: d}}\nspec:\n  pressure: {pressure}\n  expect: {expect}\n  targets:\n{target}"
    )
}

/// Five measures of 100 ms each; a generous timeout (two cores run the suite beside it).
const P: &str = "{duration: 500ms, timeout: 5s}";

/// `text` as `t.yaml` in a folder of its own (kept while the first value lives).
fn written(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let files = tempfile::tempdir().unwrap();
    let f = task_file(files.path(), "t.yaml", text);
    (files, f)
}

fn kpatrol(args: &[&str], file: &Path) -> std::process::Output {
    Command::new(KPATROL).args(args).arg(file).output().unwrap()
}

/// The names in `dir` (the test's folder holds nothing but the round's files).
fn left_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn report(out: &std::process::Output) -> RoundReport {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A round on `dir`: every measure sent and answered, nothing failed, nothing left.
fn round_on(dir: &Path) {
    let (_files, f) = written(&task(
        P,
        "{fdatasync: {p99: 5s}, seqWrite: {min: 1KiB/s}, randRead: {minIops: 1}}",
        &format!("    - {{name: t, path: \"{}\", size: 2Mi}}\n", dir.display()),
    ));
    let out = kpatrol(&["run", "-o", "json"], &f);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, MEASURES.map(|m| format!("t {m}")));
    for t in &r.targets {
        assert!(t.sent > 0, "{}: nothing sent", t.name);
        assert_eq!(t.answered, t.sent, "{}", t.name);
        assert_eq!(t.failed, 0, "{}", t.name);
        let code = if t.name.as_str().contains("Read") {
            "read"
        } else {
            "written"
        };
        assert_eq!(t.codes.get(code), Some(&t.sent), "{}: {:?}", t.name, t.codes);
    }
    let checks: Vec<String> = r
        .checks
        .iter()
        .map(|c| format!("{} {}", c.subject, c.measure))
        .collect();
    for want in ["t fdatasync latency p99", "t seqWrite throughput", "t randRead iops"] {
        assert!(checks.iter().any(|c| c == want), "{want} in {checks:?}");
    }
    assert!(left_in(dir).is_empty(), "left: {:?}", left_in(dir));
}

#[test]
fn a_round_on_a_folder_of_the_disk_measures_everything_and_leaves_nothing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    round_on(dir.path());
}

#[test]
fn a_round_on_tmpfs_measures_everything_and_leaves_nothing() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let fs = rustix::fs::statfs(dir.path()).unwrap();
    assert_eq!(fs.f_type as i64, libc::TMPFS_MAGIC, "/dev/shm is not tmpfs here");
    round_on(dir.path());
}

#[test]
fn a_floor_the_disk_cannot_reach_fails_the_round_and_names_it() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_files, f) = written(&task(
        "{duration: 200ms, timeout: 5s}",
        "{seqWrite: {min: 1000000GiB/s}}",
        &format!(
            "    - {{name: t, path: \"{}\", size: 1Mi, measures: [seqWrite]}}\n",
            dir.path().display()
        ),
    ));
    let out = kpatrol(&["run", "-o", "json"], &f);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| format!("{} {} {}", c.subject, c.measure, c.threshold))
        .collect();
    assert_eq!(failed, ["t seqWrite throughput ≥ 976.6 TiB/s"]);
    assert_eq!(r.targets.len(), 1, "only the measure listed runs");
    assert!(left_in(dir.path()).is_empty());
}

#[tokio::test]
async fn the_probe_runs_a_disk_round_as_a_pod_does() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_files, f) = written(&task(
        "{duration: 200ms, timeout: 5s}",
        "{}",
        &format!(
            "    - {{path: \"{}\", size: 1Mi, measures: [fdatasync, randRead]}}\n",
            dir.path().display()
        ),
    ));
    let log = f.with_file_name("termination-log");
    let out = probe_round("disk", &f, &log).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let msg = kpatrol::report::read_message(&std::fs::read_to_string(&log).unwrap());
    let kpatrol::report::Message::Report(r) = msg else {
        panic!("not a report: {msg:?}")
    };
    let d = dir.path().display();
    let names: Vec<String> = r.targets.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, [format!("{d} fdatasync"), format!("{d} randRead")]);
    assert!(left_in(dir.path()).is_empty());
}

/// Starts a long round on `dir` and waits (bounded) until it holds its files open.
fn started_round(dir: &Path, files: &Path) -> std::process::Child {
    let f = task_file(
        files,
        "t.yaml",
        &task(
            "{duration: 60s, timeout: 5s}",
            "{}",
            &format!("    - {{name: t, path: \"{}\", size: 2Mi}}\n", dir.display()),
        ),
    );
    #[allow(clippy::zombie_processes)] // returned: the caller waits for it
    let mut child = Command::new(KPATROL)
        .args(["run", "-o", "json"])
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: Vec<String> = std::fs::read_dir(&fds)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if open.iter().any(|p| {
            p.starts_with(&dir.display().to_string()) && p.contains(".kpatrol-disk-") && p.ends_with("(deleted)")
        }) {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the round never opened its files: {open:?}");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling /proc, bounded
    }
}

#[test]
fn nothing_is_left_after_sigterm_and_the_round_still_reports() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let files = tempfile::tempdir().unwrap();
    let child = started_round(dir.path(), files.path());
    assert!(left_in(dir.path()).is_empty(), "files are unlinked while open");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a stopped round fails");
    let r = report(&out);
    assert!(r.stopped);
    assert!(r.checks.iter().any(|c| c.measure.name() == "completed" && !c.pass));
    assert!(left_in(dir.path()).is_empty(), "left: {:?}", left_in(dir.path()));
}

#[test]
fn nothing_is_left_after_sigkill() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut child = started_round(dir.path(), files.path());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(left_in(dir.path()).is_empty(), "left: {:?}", left_in(dir.path()));
}

#[test]
fn a_later_run_removes_what_a_killed_one_left_but_not_what_a_live_one_holds() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // a run killed between creating a file and unlinking it leaves its name, unlocked
    let stale = dir.path().join(".kpatrol-disk-4242-1-data");
    std::fs::write(&stale, b"left by a killed run").unwrap();
    // a run alive at that moment holds its lock
    let held = dir.path().join(".kpatrol-disk-4343-1-data");
    let h = std::fs::File::create(&held).unwrap();
    rustix::fs::flock(&h, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    // and a file of someone else is none of the round's business
    std::fs::write(dir.path().join("etcd.wal"), b"x").unwrap();
    let (_files, f) = written(&task(
        "{duration: 100ms, timeout: 5s}",
        "{}",
        &format!(
            "    - {{path: \"{}\", size: 1Mi, measures: [fdatasync]}}\n",
            dir.path().display()
        ),
    ));
    let out = kpatrol(&["run"], &f);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut left = left_in(dir.path());
    left.sort();
    assert_eq!(left, [".kpatrol-disk-4343-1-data", "etcd.wal"]);
    drop(h);
}

#[test]
fn a_missing_folder_stops_the_round_with_its_line_and_field() {
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("nope");
    let f = task_file(
        files.path(),
        "t.yaml",
        &task(P, "{}", &format!("    - {{path: \"{}\"}}\n", missing.display())),
    );
    let out = kpatrol(&["run"], &f);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "line 8, spec.targets[0].path: {} does not exist",
            missing.display()
        )),
        "{err}"
    );
    assert!(!missing.exists(), "nothing created");
}

/// Runs `kpatrol run` of a task on a tmpfs mounted with `options` at a folder of its own,
/// in a mount namespace of its own (nothing outlives it); returns the exit code, stderr
/// and what the folder held after the run. `None` when this user cannot make mount
/// namespaces (the test needs root, as CI has).
fn run_on_tmpfs(options: &str, task_text: impl Fn(&Path) -> String) -> Option<(Option<i32>, String, String)> {
    if !Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: mount namespaces need root");
        return None;
    }
    let files = tempfile::tempdir().unwrap();
    let mnt = files.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let f = task_file(files.path(), "t.yaml", &task_text(&mnt));
    let script = format!(
        "mount -t tmpfs -o {options} kpatrol-test '{m}' || exit 99; '{KPATROL}' run '{f}'; rc=$?; echo \"left: $(ls -A '{m}')\" >&2; exit $rc",
        m = mnt.display(),
        f = f.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(99), "mount failed: {err}");
    let left = err
        .lines()
        .find_map(|l| l.strip_prefix("left: "))
        .unwrap_or("?")
        .to_string();
    Some((out.status.code(), err, left))
}

#[test]
fn a_read_only_file_system_stops_the_round_before_anything_is_written() {
    let Some((code, err, left)) = run_on_tmpfs("ro,size=4m", |m| {
        task(P, "{}", &format!("    - {{path: \"{}\", size: 1Mi}}\n", m.display()))
    }) else {
        return;
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 8, spec.targets[0].path: ") && err.contains("is on a read-only file system"),
        "{err}"
    );
    assert_eq!(left, "", "nothing written");
}

#[test]
fn a_size_above_the_free_space_stops_the_round_before_anything_is_written() {
    let Some((code, err, left)) = run_on_tmpfs("size=8m", |m| {
        task(
            P,
            "{}",
            &format!("    - {{path: \"{}\",\n       size: 16Mi}}\n", m.display()),
        )
    }) else {
        return;
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 9, spec.targets[0].size: ")
            && err.contains("the round's files need 32 MiB free")
            && err.contains("has 8 MiB free"),
        "{err}"
    );
    assert_eq!(left, "", "nothing written");
}

#[test]
fn bad_disk_tasks_are_refused_with_file_line_field_and_what_is_allowed() {
    const PATH: &str = "(allowed: an absolute folder path without `.` or `..` parts, e.g. /var/lib/etcd-probe (in a pod: where the volume is mounted))";
    const SIZE: &str =
        "(allowed: a size from 1Mi to 64Gi, e.g. 256Mi, 1Gi, 500M (the fdatasync file takes up to 64Mi more))";
    const VOLUME: &str = "(allowed: one of {emptyDir: {}}, {hostPath: /node/folder}, {pvc: CLAIM-NAME})";
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "{}",
            "    - {path: var/lib}\n",
            "t.yaml:8:14: spec.targets[0].path: `var/lib` is not an absolute path",
        ),
        (
            "{}",
            "    - {path: /a/../etc}\n",
            "t.yaml:8:14: spec.targets[0].path: `/a/../etc` has `..`",
        ),
        (
            "{}",
            "    - {size: 1Mi}\n",
            "t.yaml:8:7: spec.targets[0].path: required field is missing",
        ),
        (
            "{}",
            "    - {path: /x, size: lots}\n",
            "t.yaml:8:24: spec.targets[0].size: `lots` is not a size",
        ),
        (
            "{}",
            "    - {path: /x, size: 512Ki}\n",
            "t.yaml:8:24: spec.targets[0].size: 512Ki is 512 KiB",
        ),
        (
            "{}",
            "    - {path: /x, size: 100Gi}\n",
            "t.yaml:8:24: spec.targets[0].size: 100Gi is 100 GiB",
        ),
        (
            "{}",
            "    - {path: /x, volume: {}}\n",
            "t.yaml:8:26: spec.targets[0].volume: the volume names no kind",
        ),
        (
            "{}",
            "    - {path: /x, volume: {pvc: a, hostPath: /b}}\n",
            "t.yaml:8:26: spec.targets[0].volume: a volume is one of emptyDir, hostPath, pvc, not several",
        ),
        (
            "{}",
            "    - {path: /x, volume: {hostPath: b}}\n",
            "t.yaml:8:37: spec.targets[0].volume.hostPath: `b` is not an absolute path (allowed: an absolute folder path of the node, e.g. /var/lib/etcd)",
        ),
        (
            "{}",
            "    - {path: /x, volume: {pvc: Bad_Name}}\n",
            "t.yaml:8:32: spec.targets[0].volume.pvc: `Bad_Name` is not a valid Kubernetes object name",
        ),
        (
            "{}",
            "    - {path: /x, measures: [fsync]}\n",
            "t.yaml:8:29: spec.targets[0].measures[0]: unknown measure `fsync`",
        ),
        (
            "{}",
            "    - {path: /x, measures: [seqRead, seqRead]}\n",
            "t.yaml:8:38: spec.targets[0].measures[1]: seqRead is listed twice",
        ),
        (
            "{}",
            "    - {path: /x, measures: [fdatasync], expect: {randWrite: {minIops: 10}}}\n",
            "t.yaml:8:49: spec.targets[0].expect: an expectation on randWrite, which this target does not measure (allowed: expectations on the measures listed in `measures`: fdatasync)",
        ),
        (
            "{seqRead: {min: fast}}",
            "    - {path: /x}\n",
            "t.yaml:6:27: spec.expect.seqRead.min: `fast` is not a throughput (allowed: bytes per second, e.g. 100MiB/s, 1.5GiB/s, 500MB/s, 800KiB/s)",
        ),
        (
            "{randRead: {minIops: 0}}",
            "    - {path: /x}\n",
            "t.yaml:6:32: spec.expect.randRead.minIops: 0 I/O per second (allowed: a number of I/O operations per second above 0, e.g. 2000)",
        ),
        (
            "{randRead: {min: 1MiB/s}}",
            "    - {path: /x}\n",
            "t.yaml:6:23: spec.expect.randRead.min: unknown field (allowed: max, mean, minIops, p50, p90, p95, p99)",
        ),
        (
            "{fdatasync: {p99: 0.005ms}}",
            "    - {path: /x}\n",
            "t.yaml:6:29: spec.expect.fdatasync.p99: a latency limit of 0.005ms can never be met: no attempt is measured that fast (allowed: at least 0.01ms)",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (expect, target, want) in &cases {
        let f = task_file(dir.path(), "t.yaml", &task(P, expect, target));
        let out = kpatrol(&["validate"], &f);
        let text = String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", dir.path().display()), "");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("t.yaml:")).collect();
        let full = |e: &&str| e.starts_with(want);
        if out.status.code() != Some(1) || errors.len() != 1 || !errors.iter().any(full) {
            wrong.push(format!(
                "{target}  want: {want}\n  got ({:?}): {errors:?}",
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // the allowed texts, once each
    for (target, allowed) in [
        ("    - {path: var}\n", PATH),
        ("    - {path: /x, size: lots}\n", SIZE),
        ("    - {path: /x, volume: {}}\n", VOLUME),
    ] {
        let f = task_file(dir.path(), "t.yaml", &task(P, "{}", target));
        let text = String::from_utf8_lossy(&kpatrol(&["validate"], &f).stdout).into_owned();
        assert!(text.contains(allowed), "{text}");
    }
    // a measure misspelled gets a suggestion
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task(P, "{}", "    - {path: /x, measures: [seqwrite]}\n"),
    );
    let text = String::from_utf8_lossy(&kpatrol(&["validate"], &f).stdout).into_owned();
    assert!(text.contains("did you mean `seqWrite`?"), "{text}");
    // qps and maxInFlight are not a DiskCheck's to set, from the task or the command line
    let f = task_file(
        dir.path(),
        "t.yaml",
        &task("{qps: 10, maxInFlight: 4}", "{}", "    - {path: /x}\n"),
    );
    let text = String::from_utf8_lossy(&kpatrol(&["validate"], &f).stdout).into_owned();
    assert!(
        text.contains(
            "spec.pressure.qps: DiskCheck measures as fast as the disk answers, one I/O at a time: it takes no qps"
        ) && text.contains("spec.pressure.maxInFlight: DiskCheck keeps one I/O in flight: it takes no maxInFlight"),
        "{text}"
    );
    let f = task_file(dir.path(), "t.yaml", &task(P, "{}", "    - {path: /x}\n"));
    let out = Command::new(KPATROL)
        .args(["run", "--qps", "5"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it takes no qps"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_disk_task_renders_its_volumes_at_the_folders_and_warns_for_hostpath() {
    let dir = tempfile::tempdir().unwrap();
    let f = task_file(
        dir.path(),
        "t.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: DiskCheck\nmetadata: {name: disk}\nspec:\n  schedule: \"@every 1h\"\n  agents: {perNode: {nodeSelector: {node-role.kubernetes.io/control-plane: \"\"}}}\n  expect: {fdatasync: {p99: 10ms}}\n  targets:\n    - {name: scratch, path: /scratch}\n    - {name: claim, path: /claim, volume: {pvc: fast-ssd}}\n",
    );
    let ft = kpatrol::plan::load_file(&f).unwrap();
    assert!(ft.diagnostics.is_empty(), "{:#?}", ft.diagnostics);
    let r = kpatrol::render::render(&ft.plans, &Default::default()).expect("renders");
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    let text = &r.files["kpatrol-disk.yaml"];
    for want in [
        "- disk\n",
        "mountPath: /scratch\n",
        "mountPath: /claim\n",
        "emptyDir: {}\n",
        "claimName: fast-ssd\n",
        "fsGroup: 65532\n",
        "readOnlyRootFilesystem: true\n",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    assert!(!text.contains("hostPath"), "{text}");
    // a hostPath renders with a warning that says the level it needs
    let f = task_file(
        dir.path(),
        "h.yaml",
        "apiVersion: kpatrol.dev/v1\nkind: DiskCheck\nmetadata: {name: etcd-disk}\nspec:\n  targets:\n    - {path: /var/lib/etcd-probe, size: 256Mi, volume: {hostPath: /var/lib/etcd}}\n",
    );
    let ft = kpatrol::plan::load_file(&f).unwrap();
    let r = kpatrol::render::render(&ft.plans, &Default::default()).expect("renders");
    let text = &r.files["kpatrol-etcd-disk.yaml"];
    assert!(
        text.contains("path: /var/lib/etcd\n") && text.contains("type: Directory"),
        "{text}"
    );
    let warnings: Vec<String> = r.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("spec.targets[0].volume.hostPath")
            && warnings[0].contains("pod-security.kubernetes.io/enforce: privileged"),
        "{warnings:?}"
    );
}
