//! Typed reading of a spanned YAML node: fields of a mapping, scalars, durations, enums,
//! names by Kubernetes' rules, files and target lists. Every problem becomes a diagnostic at
//! the node's position; readers return `None` and go on, so one pass finds every problem.
//! Unknown fields are reported when a mapping's reader finishes, with a "did you mean" among
//! the fields the code asked for. A value kept for planning is a [`Field`]: absent, invalid
//! (already reported) or [`Spanned`] with where it came from ([`At`]: a field, or a flag).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::FileRef;
use super::k8s::{self, NameRule};
use super::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::duration::parse_duration;

/// Where a raw value came from: a field of the task file, or a command-line flag.
#[derive(Clone, Debug, PartialEq)]
pub enum At {
    Field { pos: Pos, path: String },
    Flag(&'static str),
}

/// A value as read, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: At,
}

impl<T> Spanned<T> {
    /// A value given by a command-line flag.
    pub fn flag(flag: &'static str, value: T) -> Self {
        Spanned {
            value,
            at: At::Flag(flag),
        }
    }
}

/// A field of a raw task: absent (or null), present but unreadable (already reported), or
/// read.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<T> {
    Absent,
    Invalid,
    Set(Spanned<T>),
}

// not derived: a derive would ask `T: Default` of every value type
#[allow(clippy::derivable_impls)]
impl<T> Default for Field<T> {
    fn default() -> Self {
        Field::Absent
    }
}

impl<T> Field<T> {
    pub fn value(&self) -> Option<&T> {
        self.spanned().map(|s| &s.value)
    }
    pub fn spanned(&self) -> Option<&Spanned<T>> {
        match self {
            Field::Set(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
    /// `other` where it is given, `self` otherwise (a flag over the file's value).
    pub fn or_over(self, other: Field<T>) -> Field<T> {
        if other.is_absent() { self } else { other }
    }
}

/// Reading context: where problems go.
pub struct Cx<'d> {
    pub diags: &'d mut Diagnostics,
    /// Files the task names, to be checked for existence at the edge (reading stays pure).
    pub files: Vec<crate::plan::FileRef>,
    /// Where a plain number or boolean was read as a string: the task a pod reads keeps
    /// these as the text written (`1.10`, not `1.1`).
    pub as_text: std::collections::BTreeSet<Pos>,
}

/// The fields of one mapping, with the ones read so far.
pub struct Fields<'n> {
    pub pos: Pos,
    pub path: String,
    entries: &'n [(Key, Node)],
    asked: Vec<&'static str>,
    ignored: Vec<&'static str>,
}

/// Joins a field path and a key; an empty key shows as `""`, so every path names something.
pub fn join(path: &str, key: &str) -> String {
    let key = if key.is_empty() { "\"\"" } else { key };
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'n> Fields<'n> {
    /// An empty mapping, for an absent block whose defaults apply.
    pub fn empty(pos: Pos, path: &str) -> Self {
        Fields {
            pos,
            path: path.to_string(),
            entries: &[],
            asked: vec![],
            ignored: vec![],
        }
    }

    /// The value of `key`, `None` when absent or null (null means "not set").
    pub fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.asked.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }

    /// Whether `key` is present (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.name == key)
    }

    /// Accepts `key` without reading it.
    pub fn ignore(&mut self, key: &'static str) {
        self.ignored.push(key);
    }

    /// The dotted path of `key` in this mapping.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Position of `key`'s value, or of the mapping when absent.
    pub fn pos_of(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v.pos)
            .unwrap_or(self.pos)
    }

    /// Reports every field that was neither read nor ignored.
    pub fn finish(&mut self, cx: &mut Cx) {
        let known: Vec<&str> = self.asked.iter().chain(self.ignored.iter()).copied().collect();
        for (k, _) in self.entries.iter() {
            if !known.contains(&k.name.as_str()) {
                let mut sorted = known.clone();
                sorted.sort_unstable();
                sorted.dedup();
                cx.diags
                    .error(k.pos, &join(&self.path, &k.name), "unknown field")
                    .suggest(did_you_mean(&k.name, known.iter().copied()))
                    .allowed(sorted.join(", "));
            }
        }
    }

    pub fn str(&mut self, cx: &mut Cx, key: &'static str) -> Option<String> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.string(n, &p))
    }
    pub fn int(&mut self, cx: &mut Cx, key: &'static str) -> Option<i64> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.int(n, &p))
    }
    pub fn float(&mut self, cx: &mut Cx, key: &'static str) -> Option<f64> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.float(n, &p))
    }
    pub fn bool(&mut self, cx: &mut Cx, key: &'static str) -> Option<bool> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.bool(n, &p))
    }
    pub fn duration(&mut self, cx: &mut Cx, key: &'static str) -> Option<Duration> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.duration(n, &p))
    }
    pub fn one_of(&mut self, cx: &mut Cx, key: &'static str, allowed: &[&'static str]) -> Option<&'static str> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.one_of(n, &p, allowed))
    }
    pub fn string_map(&mut self, cx: &mut Cx, key: &'static str) -> Option<BTreeMap<String, String>> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.string_map(n, &p))
    }
    pub fn map(&mut self, cx: &mut Cx, key: &'static str) -> Option<Fields<'n>> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.fields(n, &p))
    }
    pub fn list(&mut self, cx: &mut Cx, key: &'static str) -> Option<&'n [Node]> {
        let p = self.path_of(key);
        self.get(key).and_then(|n| cx.list(n, &p))
    }

    /// `key` read by `read` into a [`Field`] that remembers where it was.
    pub fn field<T>(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        read: impl FnOnce(&mut Cx, &Node, &str) -> Option<T>,
    ) -> Field<T> {
        let path = self.path_of(key);
        match self.get(key) {
            None => Field::Absent,
            Some(n) => match read(cx, n, &path) {
                Some(value) => Field::Set(Spanned {
                    value,
                    at: At::Field { pos: n.pos, path },
                }),
                None => Field::Invalid,
            },
        }
    }

    /// Like `get`, but a missing field is an error.
    pub fn required(&mut self, cx: &mut Cx, key: &'static str) -> Option<&'n Node> {
        let n = self.get(key);
        if n.is_none() {
            let pos = self.pos_of(key);
            cx.diags.error(pos, &self.path_of(key), "required field is missing");
        }
        n
    }
}

impl<'d> Cx<'d> {
    pub fn new(diags: &'d mut Diagnostics) -> Self {
        Self {
            diags,
            files: Vec::new(),
            as_text: Default::default(),
        }
    }

    /// Records an error at `at`: a field of the file, or a command-line flag.
    pub fn error_at(&mut self, at: &At, message: impl Into<String>) -> &mut Diagnostic {
        match at {
            At::Field { pos, path } => self.diags.error(*pos, path, message),
            At::Flag(flag) => self
                .diags
                .error(Pos::default(), &format!("{flag} (command line)"), message),
        }
    }

    /// Records a warning at `at`.
    pub fn warn_at(&mut self, at: &At, message: impl Into<String>) -> &mut Diagnostic {
        match at {
            At::Field { pos, path } => self.diags.warn(*pos, path, message),
            At::Flag(flag) => self
                .diags
                .warn(Pos::default(), &format!("{flag} (command line)"), message),
        }
    }

    fn wrong_type(&mut self, n: &Node, path: &str, expected: &str) {
        self.diags
            .error(n.pos, path, format!("expected {expected}, found {}", n.type_name()));
    }

    /// Opens a mapping; null reads as an empty mapping.
    pub fn fields<'n>(&mut self, n: &'n Node, path: &str) -> Option<Fields<'n>> {
        match &n.value {
            Value::Map(entries) => Some(Fields {
                pos: n.pos,
                path: path.to_string(),
                entries,
                asked: vec![],
                ignored: vec![],
            }),
            Value::Null => Some(Fields {
                pos: n.pos,
                path: path.to_string(),
                entries: &[],
                asked: vec![],
                ignored: vec![],
            }),
            _ => {
                self.wrong_type(n, path, "a mapping");
                None
            }
        }
    }

    pub fn list<'n>(&mut self, n: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &n.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.wrong_type(n, path, "a list");
                None
            }
        }
    }

    pub fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(n, path, "a string");
                None
            }
        }
    }

    /// A string, or a number or boolean written as text (for header values and labels),
    /// exactly as written: `1.10`, `007` and `0x1f` stay themselves.
    pub fn scalar_string(&mut self, n: &Node, path: &str) -> Option<String> {
        if let (Value::Int(_) | Value::Float(_) | Value::Bool(_), Some(text)) = (&n.value, &n.text) {
            self.as_text.insert(n.pos);
            return Some(text.clone());
        }
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.wrong_type(n, path, "a string");
                None
            }
        }
    }

    pub fn int(&mut self, n: &Node, path: &str) -> Option<i64> {
        match &n.value {
            Value::Int(i) => Some(*i),
            _ => {
                self.wrong_type(n, path, "an integer");
                None
            }
        }
    }

    pub fn float(&mut self, n: &Node, path: &str) -> Option<f64> {
        match &n.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            Value::Float(_) => {
                let shown = n.text.as_deref().unwrap_or("it");
                self.diags
                    .error(n.pos, path, format!("`{shown}` is not a finite number"));
                None
            }
            _ => {
                self.wrong_type(n, path, "a number");
                None
            }
        }
    }

    pub fn bool(&mut self, n: &Node, path: &str) -> Option<bool> {
        match &n.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(n, path, "true or false");
                None
            }
        }
    }

    pub fn duration(&mut self, n: &Node, path: &str) -> Option<Duration> {
        let text = match &n.value {
            Value::Str(s) => s.as_str(),
            Value::Int(_) | Value::Float(_) => {
                self.diags
                    .error(n.pos, path, "a duration needs a unit")
                    .allowed("a number with ms, s, m or h, such as 500ms, 10s, 2m, 1h30m");
                return None;
            }
            _ => {
                self.wrong_type(n, path, "a duration such as 10s");
                return None;
            }
        };
        match parse_duration(text) {
            Some(d) => Some(d),
            None => {
                self.diags
                    .error(n.pos, path, format!("`{text}` is not a duration"))
                    .allowed("a number with ms, s, m or h, such as 500ms, 10s, 2m, 1h30m");
                None
            }
        }
    }

    /// One of a fixed set of strings, with "did you mean".
    pub fn one_of(&mut self, n: &Node, path: &str, allowed: &[&'static str]) -> Option<&'static str> {
        let s = self.scalar_string(n, path)?;
        if let Some(a) = allowed.iter().find(|a| **a == s) {
            return Some(a);
        }
        self.diags
            .error(n.pos, path, format!("`{s}` is not allowed"))
            .suggest(did_you_mean(&s, allowed.iter().copied()))
            .allowed(allowed.join(", "));
        None
    }

    pub fn string_map(&mut self, n: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let Value::Map(entries) = &n.value else {
            if n.value == Value::Null {
                return Some(BTreeMap::new());
            }
            self.wrong_type(n, path, "a mapping of strings");
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            if let Some(s) = self.scalar_string(v, &join(path, &k.name)) {
                out.insert(k.name.clone(), s);
            }
        }
        Some(out)
    }
}

/// A list of distinct names at `path`, each one of `allowed` exactly (an unknown one with a
/// "did you mean"; `one` names an item in messages); at least one.
pub fn name_list(
    cx: &mut Cx,
    items: &[Node],
    path: &str,
    pos: Pos,
    allowed: &[&'static str],
    one: &str,
) -> Option<Vec<&'static str>> {
    let listed = allowed.join(", ");
    if items.is_empty() {
        cx.diags.error(pos, path, format!("no {one} listed")).allowed(listed);
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(s) = cx.string(n, &p) else {
            ok = false;
            continue;
        };
        match allowed.iter().find(|a| **a == s) {
            Some(a) if out.contains(a) => {
                cx.diags.error(n.pos, &p, format!("{s} is listed twice"));
                ok = false;
            }
            Some(a) => out.push(*a),
            None => {
                cx.diags
                    .error(n.pos, &p, format!("unknown {one} `{s}`"))
                    .suggest(did_you_mean(&s, allowed.iter().copied()))
                    .allowed(listed.clone());
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A list of targets read by `read`, at least one, their names unique.
pub fn target_list<T>(
    cx: &mut Cx,
    n: &Node,
    path: &str,
    name_of: impl Fn(&T) -> &str,
    mut read: impl FnMut(&mut Cx, &mut Fields, usize) -> Option<T>,
) -> Option<Vec<T>> {
    let items = cx.list(n, path)?;
    if items.is_empty() {
        cx.diags.error(n.pos, path, "at least one target is needed");
        return None;
    }
    let mut out: Vec<T> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut f) = cx.fields(item, &format!("{path}[{i}]")) else {
            ok = false;
            continue;
        };
        match read(cx, &mut f, i) {
            Some(t) if out.iter().any(|o| name_of(o) == name_of(&t)) => {
                cx.diags.error(
                    f.pos_of("name"),
                    &f.path_of("name"),
                    format!("target name `{}` is used twice", name_of(&t)),
                );
                ok = false;
            }
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A target's optional `name`, not blank; `round` is reserved for the whole round in reports.
pub fn target_name(cx: &mut Cx, f: &mut Fields) -> Option<String> {
    let name = f.str(cx, "name");
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        cx.diags
            .error(f.pos_of("name"), &f.path_of("name"), "a target name cannot be blank")
            .allowed("a name, or leave `name` out for the default");
        return None;
    }
    if name.as_deref() == Some("round") {
        cx.diags
            .error(
                f.pos_of("name"),
                &f.path_of("name"),
                "`round` names the whole round in reports",
            )
            .allowed("any other name");
    }
    name
}

/// An absolute http or https URL with a host.
pub fn url(cx: &mut Cx, n: &Node, path: &str) -> Option<String> {
    let s = cx.string(n, path)?;
    match reqwest::Url::parse(&s) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Some(s)
        }
        Ok(u) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` has scheme `{}` or no host", u.scheme()))
                .allowed("http:// or https:// URLs with a host");
            None
        }
        Err(e) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` is not a valid URL: {e}"))
                .allowed("http:// or https:// URLs with a host");
            None
        }
    }
}

/// A string at `n` that must follow `rule` (it names a Kubernetes object, a key that becomes
/// a file name, a host); reported with the rule when it does not.
pub fn named(cx: &mut Cx, n: &Node, path: &str, rule: NameRule) -> Option<String> {
    let s = cx.string(n, path)?;
    match rule.problem(&s) {
        None => Some(s),
        Some(p) => {
            cx.diags
                .error(n.pos, path, format!("`{s}` is not a valid {}: {p}", rule.what()))
                .allowed(rule.allowed());
            None
        }
    }
}

/// `key` of `f`, when present, read with [`named`].
pub fn field_name(cx: &mut Cx, f: &mut Fields, key: &'static str, rule: NameRule) -> Option<String> {
    let path = f.path_of(key);
    f.get(key).and_then(|n| named(cx, n, &path, rule))
}

/// A mapping of label keys to values (metadata labels, node selectors), each checked as the
/// API server checks labels.
pub fn labels(cx: &mut Cx, f: &mut Fields, key: &'static str) -> Option<std::collections::BTreeMap<String, String>> {
    let map = f.string_map(cx, key)?;
    if let Some(Value::Map(entries)) = f.get(key).map(|n| &n.value) {
        for (k, v) in entries {
            let path = join(&f.path_of(key), &k.name);
            if let Some(p) = k8s::label_key_problem(&k.name) {
                cx.diags
                    .error(k.pos, &path, format!("`{}` is not a valid label key: {p}", k.name))
                    .allowed(k8s::LABEL_KEY_ALLOWED);
            }
            if let Some(value) = map.get(&k.name)
                && let Some(p) = k8s::label_value_problem(value)
            {
                cx.diags
                    .error(v.pos, &path, format!("`{value}` is not a valid label value: {p}"))
                    .allowed(k8s::LABEL_VALUE_ALLOWED);
            }
        }
    }
    Some(map)
}

pub fn file_ref(cx: &mut Cx, n: &Node, path: &str, task_dir: &Path) -> Option<FileRef> {
    let s = cx.string(n, path)?;
    if s.is_empty() {
        cx.diags.error(n.pos, path, "empty file name");
        return None;
    }
    let f = FileRef {
        path: task_dir.join(&s),
        field: path.to_string(),
        pos: n.pos,
    };
    cx.files.push(f.clone());
    Some(f)
}

/// A node as JSON, for Kubernetes objects passed through unchanged.
pub fn to_json(n: &Node) -> serde_json::Value {
    match &n.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Str(s) => s.clone().into(),
        Value::Seq(items) => items.iter().map(to_json).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.name.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
