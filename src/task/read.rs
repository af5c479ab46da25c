//! Typed reading of a spanned YAML node: fields of a mapping, scalars, durations and enums.
//! Every problem becomes a diagnostic at the node's position; readers return `None` and
//! go on, so one pass finds every problem. Unknown fields are reported when a mapping's
//! reader finishes, with a "did you mean" among the fields the code asked for.

use std::collections::BTreeMap;
use std::time::Duration;

use super::yaml::{Key, Node, Value};
use crate::diag::{Diagnostics, Pos, did_you_mean};
use crate::duration::parse_duration;

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
