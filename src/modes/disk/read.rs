//! Reading a native `DiskCheck`'s targets (folder, size, volume, measures) and its own
//! expectations (a block per measure); the rest of its spec is the skeleton `plan::native`
//! plans.
//!
//! ```yaml
//! expect: {fdatasync: {p99: 10ms}, seqWrite: {min: 100MiB/s}, randRead: {minIops: 2000}}
//! targets: [{path: /var/lib/etcd-probe, size: 256Mi, volume: {hostPath: /var/lib/etcd}}]
//! ```

use std::path::Path;

use super::plan::*;
use crate::modes::Mode;
use crate::plan::native::{ExpectSpec, expect, latency_limits};
use crate::plan::{CodeKind, CodeRange, MinRate, RateUnit};
use crate::task::k8s::{NameRule, quantity_bytes};
use crate::task::read::{Cx, Fields, field_name, name_list, target_list, target_name};
use crate::task::yaml::{Node, Value};

/// What `path` allows.
pub const PATH_ALLOWED: &str = "an absolute folder path without `.` or `..` parts, e.g. /var/lib/etcd-probe (in a pod: where the volume is mounted)";
/// What `size` allows.
pub const SIZE_ALLOWED: &str = "a size from 1Mi to 64Gi, e.g. 256Mi, 1Gi, 500M (the fdatasync file takes up to 64Mi more)";
/// What `volume` allows.
pub const VOLUME_ALLOWED: &str = "one of {emptyDir: {}}, {hostPath: /node/folder}, {pvc: CLAIM-NAME}";
/// What a throughput floor allows.
pub const THROUGHPUT_ALLOWED: &str = "bytes per second, e.g. 100MiB/s, 1.5GiB/s, 500MB/s, 800KiB/s";

/// Reads and plans a native `DiskCheck`'s targets over the round's expectations.
pub(crate) fn disk_targets(cx: &mut Cx, n: &Node, path: &str, base: &ExpectSpec, _: &Path) -> Option<Mode> {
    let targets = target_list(cx, n, path, |t: &DiskTarget| &t.name, |cx, f, _| disk_target(cx, f, base))?;
    Some(Mode::Disk(DiskPlan { targets }))
}

fn disk_target(cx: &mut Cx, f: &mut Fields, base: &ExpectSpec) -> Option<DiskTarget> {
    let before = cx.diags.error_count();
    let name = target_name(cx, f);
    let folder = f.required(cx, "path").and_then(|n| {
        let p = f.path_of("path");
        let s = cx.string(n, &p)?;
        match folder_problem(&s) {
            None => Some(s),
            Some(problem) => {
                cx.diags.error(n.pos, &p, problem).allowed(PATH_ALLOWED);
                None
            }
        }
    });
    let size = match f.get("size") {
        None => Some(DEFAULT_SIZE),
        Some(n) => {
            let p = f.path_of("size");
            let text = cx.scalar_string(n, &p)?;
            match quantity_bytes(text.trim()) {
                Some(b) if (MIN_SIZE..=MAX_SIZE).contains(&b) => Some(b),
                Some(b) => {
                    cx.diags
                        .error(n.pos, &p, format!("{text} is {}", crate::judge::bytes_text(b as f64)))
                        .allowed(SIZE_ALLOWED);
                    None
                }
                None => {
                    cx.diags
                        .error(n.pos, &p, format!("`{text}` is not a size"))
                        .allowed(SIZE_ALLOWED);
                    None
                }
            }
        }
    };
    let volume = match f.map(cx, "volume") {
        None if f.has("volume") => None,
        None => Some(DiskVolume::EmptyDir),
        Some(mut v) => volume(cx, &mut v),
    };
    let measures = match f.list(cx, "measures") {
        None if f.has("measures") && f.get("measures").is_some() => None,
        None => Some(DiskMeasure::ALL.to_vec()),
        Some(items) => measure_list(cx, items, &f.path_of("measures"), f.pos_of("measures")),
    };
    let own = match f.map(cx, "expect") {
        Some(mut e) => expect(cx, &mut e, disk_expect),
        None => ExpectSpec::default(),
    };
    let located = Located {
        path: (f.pos_of("path"), f.path_of("path")),
        size: (f.pos_of("size"), f.path_of("size")),
    };
    let expect_pos = f.pos_of("expect");
    let expect_path = f.path_of("expect");
    f.finish(cx);
    let (folder, size, volume, measures) = (folder?, size?, volume?, measures?);
    // an expectation of the target's own on a measure it does not take could never be
    // checked (the round's apply to the targets that take them)
    for m in own.disk.measures.keys() {
        if !measures.contains(m) {
            cx.diags
                .error(
                    expect_pos,
                    &expect_path,
                    format!("an expectation on {}, which this target does not measure", m.as_str()),
                )
                .allowed(format!(
                    "expectations on the measures listed in `measures`: {}",
                    measures.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                ));
        }
    }
    if cx.diags.error_count() > before {
        return None;
    }
    let name = name.unwrap_or_else(|| folder.clone());
    let spec = own.over(base);
    let general = spec.resolve(CodeKind::Disk);
    let measures = measures
        .into_iter()
        .map(|m| {
            let own = spec.disk.measures.get(&m).cloned().unwrap_or_default();
            let mut expect = general.clone();
            expect.latency = own.latency.over(&general.latency);
            expect.codes = vec![CodeRange {
                from: m.code(),
                to: m.code(),
            }];
            expect.min_rate = own.min_per_second.map(|per_second| MinRate {
                per_second,
                unit: if m.is_sequential() {
                    RateUnit::Bytes(m.bytes())
                } else {
                    RateUnit::Ops
                },
            });
            MeasurePlan {
                measure: m,
                id: format!("{name} {}", m.as_str()),
                expect,
            }
        })
        .collect();
    Some(DiskTarget {
        name,
        path: folder,
        size,
        volume,
        measures,
        at: located,
    })
}

/// Why `path` cannot be a target's folder. Pure.
pub fn folder_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("`{path}` is not an absolute path"));
    }
    if path.len() > 1024 {
        return Some(format!("the path has {} bytes", path.len()));
    }
    if path.contains('\0') {
        return Some("the path holds a NUL byte".into());
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if parts.is_empty() {
        return Some("`/` is the root of the file system, not a folder for test files".into());
    }
    if let Some(p) = parts.iter().find(|p| p.is_empty() || **p == "." || **p == "..") {
        let p = if p.is_empty() { "an empty part (`//`)".to_string() } else { format!("`{p}`") };
        return Some(format!("`{path}` has {p}"));
    }
    None
}

fn volume(cx: &mut Cx, v: &mut Fields) -> Option<DiskVolume> {
    let empty = v.get("emptyDir").is_some() || v.has("emptyDir");
    if let Some(n) = v.get("emptyDir")
        && !matches!(&n.value, Value::Map(e) if e.is_empty())
    {
        cx.diags
            .error(n.pos, &v.path_of("emptyDir"), "emptyDir takes no settings here")
            .allowed("emptyDir: {}");
    }
    let host = v.get("hostPath").and_then(|n| {
        let p = v.path_of("hostPath");
        let s = cx.string(n, &p)?;
        match folder_problem(&s) {
            None => Some(s),
            Some(problem) => {
                cx.diags
                    .error(n.pos, &p, problem)
                    .allowed("an absolute folder path of the node, e.g. /var/lib/etcd");
                None
            }
        }
    });
    let pvc = field_name(cx, v, "pvc", NameRule::Object);
    v.finish(cx);
    let set = [empty, host.is_some() || v.has("hostPath"), pvc.is_some() || v.has("pvc")];
    match set.iter().filter(|s| **s).count() {
        0 => {
            cx.diags
                .error(v.pos, &v.path, "the volume names no kind")
                .allowed(VOLUME_ALLOWED);
            None
        }
        1 => match (host, pvc) {
            (Some(h), _) => Some(DiskVolume::HostPath(h)),
            (_, Some(c)) => Some(DiskVolume::Pvc(c)),
            _ if empty => Some(DiskVolume::EmptyDir),
            _ => None, // reported where it was read
        },
        _ => {
            cx.diags
                .error(v.pos, &v.path, "a volume is one of emptyDir, hostPath, pvc, not several")
                .allowed(VOLUME_ALLOWED);
            None
        }
    }
}

fn measure_list(cx: &mut Cx, items: &[Node], path: &str, pos: crate::diag::Pos) -> Option<Vec<DiskMeasure>> {
    let names = name_list(cx, items, path, pos, &DiskMeasure::ALL.map(|m| m.as_str()), "measure")?;
    let mut out: Vec<DiskMeasure> = names.into_iter().filter_map(DiskMeasure::from_name).collect();
    // measured in a fixed order, whatever the list's
    out.sort();
    Some(out)
}

/// A DiskCheck's own expectation fields: a block per measure, with latency limits and a
/// floor (`min` throughput for seqWrite and seqRead, `minIops` for the others).
pub(crate) fn disk_expect(cx: &mut Cx, f: &mut Fields, e: &mut ExpectSpec) {
    for m in DiskMeasure::ALL {
        let Some(mut b) = f.map(cx, m.as_str()) else {
            continue;
        };
        let latency = latency_limits(cx, &mut b);
        let min_per_second = if m.is_sequential() {
            b.get("min").and_then(|n| {
                let p = b.path_of("min");
                let s = cx.scalar_string(n, &p)?;
                match parse_throughput(&s) {
                    Some(v) => Some(v),
                    None => {
                        cx.diags
                            .error(n.pos, &p, format!("`{s}` is not a throughput"))
                            .allowed(THROUGHPUT_ALLOWED);
                        None
                    }
                }
            })
        } else {
            b.float(cx, "minIops").and_then(|v| {
                if v > 0.0 && v.is_finite() {
                    Some(v)
                } else {
                    cx.diags
                        .error(b.pos_of("minIops"), &b.path_of("minIops"), format!("{v} I/O per second"))
                        .allowed("a number of I/O operations per second above 0, e.g. 2000");
                    None
                }
            })
        };
        b.finish(cx);
        e.disk.measures.insert(m, MeasureExpect { latency, min_per_second });
    }
}

/// Bytes per second of `100MiB/s`, `1.5 GiB/s`, `500MB/s`; `None` when it is not one. Pure.
pub fn parse_throughput(text: &str) -> Option<f64> {
    let s = text.trim().strip_suffix("/s")?.trim_end();
    const UNITS: &[(&str, f64)] = &[
        ("KiB", 1024.0),
        ("MiB", 1048576.0),
        ("GiB", 1073741824.0),
        ("KB", 1e3),
        ("kB", 1e3),
        ("MB", 1e6),
        ("GB", 1e9),
        ("B", 1.0),
    ];
    let (number, factor) = UNITS.iter().find_map(|(u, f)| s.strip_suffix(u).map(|n| (n.trim_end(), *f)))?;
    let v = number.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)?;
    Some(v * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughputs_parse_with_their_units() {
        assert_eq!(parse_throughput("100MiB/s"), Some(100.0 * 1048576.0));
        assert_eq!(parse_throughput(" 1.5 GiB/s "), Some(1.5 * 1073741824.0));
        assert_eq!(parse_throughput("500MB/s"), Some(5e8));
        assert_eq!(parse_throughput("800KiB/s"), Some(800.0 * 1024.0));
        assert_eq!(parse_throughput("100MiB"), None);
        assert_eq!(parse_throughput("fast/s"), None);
        assert_eq!(parse_throughput("0MiB/s"), None);
        assert_eq!(parse_throughput("-1MiB/s"), None);
        assert_eq!(parse_throughput("100Mib/s"), None);
    }

    #[test]
    fn folders_must_be_absolute_and_plain() {
        assert_eq!(folder_problem("/var/lib/etcd-probe"), None);
        assert_eq!(folder_problem("/tmp/x/"), None);
        assert!(folder_problem("var/lib").unwrap().contains("not an absolute path"));
        assert!(folder_problem("/").unwrap().contains("root"));
        assert!(folder_problem("/a/../etc").unwrap().contains("`..`"));
        assert!(folder_problem("/a/./b").unwrap().contains("`.`"));
        assert!(folder_problem("/a//b").unwrap().contains("empty part"));
        assert!(folder_problem("/a\0b").unwrap().contains("NUL"));
    }
}
