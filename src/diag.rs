//! Diagnostics: one problem in one task file, pointing at the file, line, column and field
//! path, with the allowed values and a "did you mean" when a name looks misspelt.
//!
//! Loading and planning never stop at the first problem: they push every [`Diagnostic`]
//! they find into a [`Diagnostics`] list, and `kpatrol validate` prints them all.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a file: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// How bad a problem is: errors make a task invalid, warnings only inform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a task file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub pos: Pos,
    /// Dotted field path, such as `spec.targets[0].url`; empty for whole-file problems.
    pub path: String,
    pub message: String,
    /// What would have been accepted, such as `GET, HEAD, POST`.
    pub allowed: Option<String>,
    /// A close match for a misspelt name.
    pub suggestion: Option<String>,
}

/// A diagnostic prints as one line whatever the task holds: control characters in echoed
/// values and keys are escaped, and each value quoted in `backticks` and each field-path
/// part is cut to [`SHOWN_MAX`] characters.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        if self.pos.line == 0 {
            // not in the file: a command-line flag over it
            write!(f, "{}: ", escape(&file))?;
        } else {
            write!(f, "{}:{}:{}: ", escape(&file), self.pos.line, self.pos.col)?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if !self.path.is_empty() {
            let parts: Vec<String> = self.path.split('.').map(shown).collect();
            write!(f, "{}: ", parts.join("."))?;
        }
        write!(f, "{}", one_line(&self.message))?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{}`?)", shown(s))?;
        }
        if let Some(a) = &self.allowed {
            write!(f, " (allowed: {})", escape(a))?;
        }
        Ok(())
    }
}

/// The longest echo of a value in a diagnostic, in characters.
pub const SHOWN_MAX: usize = 80;

/// `s` with control characters escaped (`\n`, `\t`, `\u{1b}`), so it stays on one line.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` as echoed in a message: escaped, and cut to [`SHOWN_MAX`] characters with an ellipsis.
pub fn shown(s: &str) -> String {
    let e = escape(s);
    match e.char_indices().nth(SHOWN_MAX) {
        Some((i, _)) => format!("{}…", e.get(..i).unwrap_or_default()),
        None => e,
    }
}

/// `message` as one line: escaped, with every part between a pair of backticks (an echoed
/// value) cut to [`SHOWN_MAX`] characters.
pub fn one_line(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { shown(part) } else { escape(part) })
        .collect::<Vec<_>>()
        .join("`")
}

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// Records an error at `pos` on field `path`.
    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Error, pos, path, message)
    }

    /// Records a warning: shown, but the task stays valid.
    pub fn warn(&mut self, pos: Pos, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Warning, pos, path, message)
    }

    fn push(&mut self, severity: Severity, pos: Pos, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.list.push(Diagnostic {
            severity,
            file: self.file.clone(),
            pos,
            path: path.to_string(),
            message: message.into(),
            allowed: None,
            suggestion: None,
        });
        // the diagnostic was pushed on the line above (Vec::push_mut needs Rust 1.93)
        #[allow(clippy::expect_used)]
        self.list.last_mut().expect("just pushed")
    }

    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }
}

impl Diagnostic {
    /// Adds the allowed values to the message.
    pub fn allowed(&mut self, allowed: impl Into<String>) -> &mut Self {
        self.allowed = Some(allowed.into());
        self
    }

    /// Adds a "did you mean" suggestion.
    pub fn suggest(&mut self, s: Option<String>) -> &mut Self {
        self.suggestion = s;
        self
    }
}

/// The longest word (in bytes) for which a "did you mean" is looked for.
const SUGGEST_MAX: usize = 64;

/// The candidate closest to `word`, when it is close enough to be a likely misspelling.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // Names are short: a long word is no misspelling, and its distance would cost
    // time and memory in proportion to its length.
    if word.len() > SUGGEST_MAX {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| c.len() <= SUGGEST_MAX)
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two
/// neighbouring characters (optimal string alignment).
// The table is (a.len() + 1) × (b.len() + 1) and every index below stays inside it: the
// textbook recurrence reads best with plain indices.
#[allow(clippy::indexing_slicing)]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // row 0 and column 0: the distance from an empty prefix is the other prefix's length
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| {
            (0..=b.len())
                .map(|j| if i == 0 || j == 0 { i + j } else { 0 })
                .collect()
        })
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["qps", "duration", "timeout", "maxInFlight"];
        assert_eq!(did_you_mean("durration", fields), Some("duration".into()));
        assert_eq!(did_you_mean("maxinflight", fields), Some("maxInFlight".into()));
        assert_eq!(did_you_mean("qsp", fields), Some("qps".into()));
        assert_eq!(did_you_mean("color", fields), None);
    }

    #[test]
    fn display_has_every_part() {
        let mut d = Diagnostics::new(Path::new("jobs/a.yaml"));
        d.error(Pos { line: 3, col: 5 }, "spec.pressure.qps", "must be above 0")
            .allowed("1–100000");
        assert_eq!(
            d.list[0].to_string(),
            "jobs/a.yaml:3:5: spec.pressure.qps: must be above 0 (allowed: 1–100000)"
        );
    }
}
