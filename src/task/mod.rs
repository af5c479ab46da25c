//! Task files, raw: finding YAML files in directories, reading them, recognising each
//! document's `apiVersion` and `kind`, and reading it into a [`Task`] as written (each value
//! spanned: where it is, or which flag gave it), per format ([`native`], [`kdoctor`]), while
//! collecting every problem of shape and type with its line, column and field path. Defaults,
//! ranges and rules across fields are the plan's (`crate::plan`), which reads tasks and never
//! the other way round; command-line overrides ([`Overrides`]) are raw values too, so one set
//! of checks serves the file and the flags.
//!
//! Everything here but [`collect_files`], [`read_file`] and [`check_files`] is pure.

pub mod k8s;
pub mod kdoctor;
pub mod native;
pub mod read;
mod time_zones;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
pub use k8s::{dns_label_problem, dns_subdomain_problem};
use read::{Cx, Field, Fields, Spanned};

pub const NATIVE_API: &str = "kpatrol.dev/v1";
pub const KDOCTOR_API: &str = "kdoctor.io/v1beta1";
/// The longest native task name: its CronJob's Jobs add 11 characters, their pods the
/// agent index, and pod hostnames stay within 63.
pub const NAME_MAX: usize = 46;
pub const KDOCTOR_KINDS: &[&str] = &["AppHttpHealthy", "NetReach", "Netdns"];
/// The mode each kdoctor kind runs in.
const KDOCTOR_MODES: &[(&str, &str)] = &[("AppHttpHealthy", "http"), ("NetReach", "reach"), ("Netdns", "dns")];

/// The kinds this version renders and runs: native ones first, then kdoctor's.
pub fn renderable_kinds() -> Vec<&'static str> {
    let native = crate::modes::rendered_modes().filter_map(|m| m.native).map(|k| k.kind);
    let kdoctor = KDOCTOR_MODES
        .iter()
        .filter(|(_, mode)| crate::modes::rendered_modes().any(|m| m.name == *mode))
        .map(|(kind, _)| *kind);
    native.chain(kdoctor).collect()
}

/// The native kinds, from the modes' registration (`crate::modes`).
pub fn native_kinds() -> Vec<&'static str> {
    crate::modes::native_kinds().map(|k| k.kind).collect()
}

/// A kind kpatrol reads: which reader reads its spec, and which planner plans it.
#[derive(Clone, Copy)]
pub enum Kind {
    Native(crate::modes::NativeKind),
    AppHttpHealthy,
    NetReach,
    Netdns,
}

impl Kind {
    /// The kind named `name` of apiVersion `api`.
    pub fn of(api: &str, name: &str) -> Option<Kind> {
        if api == NATIVE_API {
            return crate::modes::native_kinds().find(|k| k.kind == name).map(Kind::Native);
        }
        Some(match name {
            "AppHttpHealthy" => Kind::AppHttpHealthy,
            "NetReach" => Kind::NetReach,
            "Netdns" => Kind::Netdns,
            _ => return None,
        })
    }
}

/// Why a file could not be read at all (exit 2), as opposed to a task being invalid (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{}:{}: YAML syntax error: {}", path.display(), pos.line, pos.col, crate::diag::one_line(message))]
    Syntax { path: PathBuf, pos: Pos, message: String },
    #[error("{}: no task files (*.yaml, *.yml) found", path.display())]
    Empty { path: PathBuf },
    #[error("{}:{}:{}: not UTF-8 text: byte 0x{byte:02x} is not valid UTF-8", path.display(), pos.line, pos.col)]
    Encoding { path: PathBuf, pos: Pos, byte: u8 },
}

/// `*.yaml` or `*.yml`, in any case (`TASK.YAML` too).
fn is_task_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

/// The position just after `valid`, a UTF-8 prefix of a file: its line, and its column in
/// characters as every other position counts them.
fn text_pos(valid: &[u8]) -> Pos {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: text.matches('\n').count() + 1,
        col: text.get(line_start..).unwrap_or_default().chars().count() + 1,
    }
}

/// One task document as read: its identity, its kind, and its spec per format.
pub struct Task {
    pub kind: Kind,
    pub meta: Meta,
    pub spec: Spec,
}

/// A task's spec as written, per format.
pub enum Spec {
    Native(native::Spec),
    Kdoctor(kdoctor::Spec),
}

/// Identity of a task, read before its kind-specific spec.
pub struct Meta {
    pub name: String,
    /// As written; `None` for kdoctor's cluster-scoped tasks.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub origin: Origin,
}

/// Where a task came from, for messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    /// Line of the document's start.
    pub line: usize,
    /// Where `metadata.name` is.
    #[serde(skip)]
    pub name_pos: Pos,
    /// Where some fields are, for problems found after planning (rendering).
    #[serde(skip)]
    pub positions: BTreeMap<String, Pos>,
    /// The task document as read, for the ConfigMap a pod reads it from.
    #[serde(skip)]
    pub document: serde_json::Value,
}

impl Origin {
    /// Where `field` is, or the task's name when not recorded.
    pub fn pos(&self, field: &str) -> Pos {
        self.positions.get(field).copied().unwrap_or(self.name_pos)
    }
}

/// The task file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `kpatrol.dev/v1`
    Native,
    /// `kdoctor.io/v1beta1`, with kdoctor's defaults and meaning.
    Kdoctor,
}

/// A file given in the task, relative paths resolved against the task file's folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileRef {
    pub path: PathBuf,
    /// The field that named it, for messages.
    pub field: String,
    #[serde(skip)]
    pub pos: Pos,
}

/// A rate as written: requests per second per target, or `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Qps {
    PerSecond(f64),
    Max,
}

/// What the command line overrides of a task: its pressure (`--qps`, `--duration`,
/// `--max-in-flight`), raw values that the plan checks as it checks the file's, and the
/// namespace of tasks that name none (`-n`, as kubectl has it; `kpatrol` by default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub qps: Field<Qps>,
    pub duration: Field<Duration>,
    pub max_in_flight: Field<i64>,
    pub namespace: Option<String>,
}

/// A flag's value that is not of the flag's type.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {value}: expected {expected}")]
pub struct FlagError {
    pub flag: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Overrides {
    /// The overrides given as text on the command line; ranges are checked when planning.
    pub fn from_flags(
        qps: Option<&str>,
        duration: Option<&str>,
        max_in_flight: Option<u32>,
    ) -> Result<Self, FlagError> {
        let bad = |flag, value: &str, expected| FlagError {
            flag,
            value: value.to_string(),
            expected,
        };
        let mut o = Overrides::default();
        if let Some(q) = qps {
            let value = match q {
                "max" => Qps::Max,
                q => Qps::PerSecond(q.parse().map_err(|_| bad("--qps", q, "a number or `max`"))?),
            };
            o.qps = Field::Set(Spanned::flag("--qps", value));
        }
        if let Some(d) = duration {
            let value =
                crate::duration::parse_duration(d).ok_or_else(|| bad("--duration", d, "a duration such as 30s"))?;
            o.duration = Field::Set(Spanned::flag("--duration", value));
        }
        if let Some(m) = max_in_flight {
            o.max_in_flight = Field::Set(Spanned::flag("--max-in-flight", m.into()));
        }
        Ok(o)
    }
}

/// The task files found under the paths given, and the directories that could not be
/// read (each one problem; the walk goes on with the rest).
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub unreadable: Vec<LoadError>,
}

/// Expands directories into their `*.yaml`/`*.yml` files (recursively, sorted); files stay as given.
/// Fails on the first directory that cannot be read; [`collect`] reports them and goes on.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut c = collect(paths)?;
    match c.unreadable.pop() {
        Some(e) => Err(e),
        None => Ok(c.files),
    }
}

/// Expands directories into their regular `*.yaml`/`*.yml` files (recursively, sorted),
/// each file once; files named stay as given. A path that does not exist, or a directory
/// without task files, fails; a subdirectory that cannot be read is one problem in
/// [`Collected::unreadable`].
pub fn collect(paths: &[PathBuf]) -> Result<Collected, LoadError> {
    let mut c = Collected::default();
    let mut seen = std::collections::HashSet::new();
    let mut dirs = std::collections::HashSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| LoadError::Read {
            path: p.clone(),
            source: e,
        })?;
        if meta.is_dir() {
            let (files, problems) = (c.files.len(), c.unreadable.len());
            walk(p, &mut c, &mut seen, &mut dirs);
            if c.files.len() == files && c.unreadable.len() == problems && !c.files.iter().any(|f| f.starts_with(p)) {
                return Err(LoadError::Empty { path: p.clone() });
            }
        } else if seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())) {
            c.files.push(p.clone());
        }
    }
    Ok(c)
}

/// Walks `dir` for task files, each file once, each directory once (symlink loops end).
/// Only regular files are taken: a FIFO named `*.yaml` would block the reader forever.
fn walk(
    dir: &Path,
    c: &mut Collected,
    seen: &mut std::collections::HashSet<PathBuf>,
    dirs: &mut std::collections::HashSet<PathBuf>,
) {
    if !dirs.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            c.unreadable.push(LoadError::Read {
                path: dir.to_path_buf(),
                source: e,
            });
            return;
        }
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        // follows symlinks, as reading does; a dangling link is skipped like any non-task file
        let Ok(meta) = std::fs::metadata(&e) else { continue };
        if meta.is_dir() {
            walk(&e, c, seen, dirs);
        } else if meta.is_file()
            && is_task_file_name(name)
            && seen.insert(std::fs::canonicalize(&e).unwrap_or_else(|_| e.clone()))
        {
            c.files.push(e);
        }
    }
}

/// Reads one task file's text: only a regular file (a FIFO never blocks), only UTF-8.
pub fn read_file(path: &Path) -> Result<String, LoadError> {
    // Opening a FIFO or a device blocks or never ends: only regular files are read.
    let meta = std::fs::metadata(path).map_err(|e| LoadError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    if !meta.is_file() {
        return Err(LoadError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| LoadError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        LoadError::Encoding {
            path: path.to_path_buf(),
            pos: text_pos(bytes.get(..at).unwrap_or_default()),
            byte: bytes.get(at).copied().unwrap_or_default(),
        }
    })
}

/// The documents of a task file's text, spanned; `path` is for messages.
pub fn parse(path: &Path, text: &str) -> Result<Vec<yaml::Document>, LoadError> {
    yaml::parse(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        pos: e.pos,
        message: e.message,
    })
}

/// Writes the scalars read as strings (at `at`) into `doc` as the text they were written
/// as, so the task a pod reads sends the header `1.10`, not `1.1`. `doc` mirrors `n`.
pub fn keep_text(n: &yaml::Node, doc: &mut serde_json::Value, at: &std::collections::BTreeSet<Pos>) {
    match (&n.value, doc) {
        (yaml::Value::Map(entries), serde_json::Value::Object(o)) => {
            for (k, v) in entries {
                if let Some(d) = o.get_mut(&k.name) {
                    keep_text(v, d, at);
                }
            }
        }
        (yaml::Value::Seq(items), serde_json::Value::Array(a)) => {
            for (v, d) in items.iter().zip(a.iter_mut()) {
                keep_text(v, d, at);
            }
        }
        (_, d) => {
            if let Some(text) = &n.text
                && at.contains(&n.pos)
            {
                *d = serde_json::Value::String(text.clone());
            }
        }
    }
}

/// The field path of a whole document, for problems with the document itself.
const DOCUMENT: &str = "(document)";

/// Reads one document (a task of either format) as written: problems of shape and type go
/// to `cx`; `None` when it is not a task at all. `dir` is the task file's folder.
pub fn read_doc(cx: &mut Cx, path: &Path, root: &yaml::Node, dir: &Path) -> Option<Task> {
    if !matches!(root.value, yaml::Value::Map(_)) {
        cx.diags.error(
            root.pos,
            DOCUMENT,
            format!("expected a mapping (a task), found {}", root.type_name()),
        );
        return None;
    }
    let mut top = cx.fields(root, "")?;
    let api = top
        .required(cx, "apiVersion")
        .and_then(|n| cx.one_of(n, "apiVersion", &[NATIVE_API, KDOCTOR_API]));
    let kind_node = top.required(cx, "kind");
    let native = native_kinds();
    let kinds: &[&str] = match api {
        Some(NATIVE_API) => &native,
        Some(_) => KDOCTOR_KINDS,
        None => &[],
    };
    let kind = match (kind_node, api) {
        (Some(n), Some(a)) => cx.string(n, "kind").and_then(|k| match Kind::of(a, &k) {
            Some(kind) => Some(kind),
            None => {
                let other_api = if a == NATIVE_API { KDOCTOR_API } else { NATIVE_API };
                let other_kinds: &[&str] = if a == NATIVE_API { KDOCTOR_KINDS } else { &native };
                if other_kinds.contains(&k.as_str()) {
                    cx.diags
                        .error(
                            n.pos,
                            "kind",
                            format!("kind `{k}` belongs to apiVersion {other_api}, not {a}"),
                        )
                        .allowed(kinds.join(", "));
                } else {
                    cx.diags
                        .error(n.pos, "kind", format!("unknown kind `{k}` for apiVersion {a}"))
                        .suggest(did_you_mean(&k, kinds.iter().chain(other_kinds).copied()))
                        .allowed(kinds.join(", "));
                }
                None
            }
        }),
        _ => None,
    };
    let meta = top
        .required(cx, "metadata")
        .and_then(|n| cx.fields(n, "metadata"))
        .and_then(|mut m| {
            let r = metadata(cx, &mut m, api == Some(KDOCTOR_API), path, root);
            m.finish(cx);
            r
        });
    top.ignore("status");
    let spec_node = top.get("spec");
    let spec_null = top.has("spec").then(|| top.pos_of("spec"));
    top.finish(cx);
    let kind = kind?;
    let spec_node = match (spec_node, spec_null) {
        (Some(n), _) => n.clone(),
        (None, Some(pos)) => {
            cx.diags.error(pos, "spec", "spec is null; expected a mapping");
            return None;
        }
        (None, None) => {
            cx.diags.error(root.pos, "spec", "required field is missing");
            return None;
        }
    };
    let mut spec = cx.fields(&spec_node, "spec")?;
    // Read (and plan) the spec even when metadata is wrong (already reported), so every
    // problem is reported at once; the errors keep the task from being used.
    let meta = meta.unwrap_or_else(|| Meta {
        name: String::new(),
        namespace: None,
        labels: BTreeMap::new(),
        origin: Origin {
            file: path.to_path_buf(),
            line: root.pos.line,
            name_pos: root.pos,
            positions: Default::default(),
            document: serde_json::Value::Null,
        },
    });
    let spec = match kind {
        Kind::Native(_) => Spec::Native(native::read(cx, &mut spec, dir)),
        Kind::AppHttpHealthy | Kind::NetReach | Kind::Netdns => Spec::Kdoctor(kdoctor::read(cx, &mut spec, kind)),
    };
    Some(Task { kind, meta, spec })
}

const IGNORED_META: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "finalizers",
    "ownerReferences",
    "selfLink",
    "generateName",
];

fn metadata(cx: &mut Cx, m: &mut Fields, kdoctor: bool, path: &Path, doc_root: &yaml::Node) -> Option<Meta> {
    let doc_pos = doc_root.pos;
    for k in IGNORED_META {
        m.ignore(k);
    }
    let name = m.required(cx, "name").and_then(|n| {
        let s = cx.string(n, "metadata.name")?;
        let problem = if kdoctor { dns_subdomain_problem(&s) } else { dns_label_problem(&s, NAME_MAX) };
        match problem {
            None => Some(s),
            Some(p) => {
                let allowed = if kdoctor {
                    "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
                } else {
                    "lower-case letters, digits and '-', starting with a letter, ending with a letter or digit, at most 46 characters (a CronJob adds 11 to its Jobs' names and an Indexed Job its pods' index, within Kubernetes' 63)"
                };
                cx.diags.error(n.pos, "metadata.name", format!("`{s}` is not a valid Kubernetes name: {p}")).allowed(allowed);
                None
            }
        }
    });
    let namespace = m.str(cx, "namespace");
    if kdoctor && namespace.as_deref().is_some_and(|n| n != "kpatrol") {
        cx.diags.warn(
            m.pos_of("namespace"),
            "metadata.namespace",
            "kdoctor tasks are cluster-scoped; kpatrol runs them in namespace kpatrol (or the one -n names)",
        );
    }
    if let Some(ns) = &namespace
        && let Some(p) = dns_label_problem(ns, 63)
    {
        cx.diags
            .error(
                m.pos_of("namespace"),
                "metadata.namespace",
                format!("`{ns}` is not a valid namespace: {p}"),
            )
            .allowed("a DNS-1123 label");
    }
    let labels = read::labels(cx, m, "labels").unwrap_or_default();
    let _annotations = m.string_map(cx, "annotations");
    Some(Meta {
        name: name?,
        // kdoctor tasks are cluster-scoped: they take the default namespace
        namespace: if kdoctor { None } else { namespace },
        labels,
        origin: Origin {
            file: path.to_path_buf(),
            line: doc_pos.line,
            name_pos: m.pos_of("name"),
            positions: Default::default(),
            document: {
                // the task as a pod reads it: a kdoctor `status` block is not part of it
                let mut d = read::to_json(doc_root);
                if let Some(o) = d.as_object_mut() {
                    o.remove("status");
                }
                d
            },
        },
    })
}

/// Checks what reading cannot, because it needs the file system: files named in tasks exist.
pub fn check_files(file: &Path, refs: &[FileRef]) -> Vec<Diagnostic> {
    let mut d = Diagnostics::new(file);
    for f in refs {
        match std::fs::metadata(&f.path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                d.error(f.pos, &f.field, format!("{} is not a file", f.path.display()));
            }
            Err(e) => {
                d.error(
                    f.pos,
                    &f.field,
                    format!("file {} cannot be read: {e}", f.path.display()),
                );
            }
        }
    }
    d.list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_has_a_reader() {
        assert_eq!(
            native_kinds(),
            ["HttpCheck", "DnsCheck", "Mesh", "TcpCheck", "DiskCheck", "SqlCheck"]
        );
        for name in native_kinds() {
            assert!(Kind::of(NATIVE_API, name).is_some(), "{name}");
        }
        for name in KDOCTOR_KINDS {
            assert!(Kind::of(KDOCTOR_API, name).is_some(), "{name}");
        }
        assert!(Kind::of(NATIVE_API, "ClusterCheck").is_none());
        assert!(Kind::of(NATIVE_API, "Netdns").is_none());
        assert!(Kind::of(KDOCTOR_API, "DnsCheck").is_none());
        for name in ["a.yaml", "a.yml", "A.YAML", "b.Yml"] {
            assert!(is_task_file_name(name), "{name}");
        }
        for name in ["a.json", "yaml", "a.yaml.bak"] {
            assert!(!is_task_file_name(name), "{name}");
        }
        assert_eq!(KDOCTOR_MODES.len(), KDOCTOR_KINDS.len());
        assert_eq!(
            renderable_kinds(),
            [
                "HttpCheck",
                "DnsCheck",
                "Mesh",
                "TcpCheck",
                "DiskCheck",
                "SqlCheck",
                "AppHttpHealthy",
                "NetReach",
                "Netdns"
            ]
        );
    }
}
