//! The mutation suite: the example tasks (`jobs/` and kdoctor's documentation examples in
//! tests/fixtures/kdoctor-examples) mutated by a small seeded generator (structure,
//! scalars, YAML features, bytes), each mutant through load, plan and render in process,
//! and a few hundred through the `kpatrol validate` and `render` binary. Every mutant must
//! end without a panic, within a bounded time, with every problem as one line
//! `file:line:col: field.path: …` (syntax and encoding errors: `file:line:col: …`), and the
//! binary with exit code 0, 1 or 2.
//!
//! Deterministic: the same seed gives the same mutants. Every failure names the case seed
//! and its mutations; replay one case with `KPATROL_MUTATION_CASE=<seed> cargo test --test
//! mutation`. `KPATROL_MUTATION_SEED` picks another run, `KPATROL_MUTATIONS` another count.

// Tests fail loudly by design: unwrap, expect, indexing and panic are how they assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kpatrol::diag::Diagnostic;
use kpatrol::plan::{load_file, load_str};
use kpatrol::render::{RenderOptions, render};
use kpatrol::task::LoadError;

/// Mutants through the library per run (the issue asks for at least 10,000).
const IN_PROCESS: u64 = 10_000;
/// Mutants through each binary command per run.
const THROUGH_BINARY: u64 = 150;
/// The longest a mutant may take to load, plan and render in process (debug build, shared
/// CPUs): far above the milliseconds it takes, far below a hang.
const PER_FILE: Duration = Duration::from_secs(2);
/// The longest a diagnostic line may be: echoed values are cut, so lines stay short.
const LINE_MAX: usize = 2_000;
const DEFAULT_SEED: u64 = 0x6b70_6174_726f_6c09;

// ---------------------------------------------------------------------------------------
// a seeded generator

/// SplitMix64: tiny, fast and good enough to pick mutations; no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The seed of case `i` of a run: every case can be replayed alone from it.
fn case_seed(base: u64, i: u64) -> u64 {
    Rng(base ^ i.wrapping_mul(0xa076_1d64_78bd_642f)).next()
}

/// The cases of this run: one replayed case, or `count` from the run's seed
/// (`KPATROL_MUTATIONS` changes the count in process).
fn case_seeds(count: u64, in_process: bool) -> Vec<u64> {
    if let Some(one) = env_u64("KPATROL_MUTATION_CASE") {
        return vec![one];
    }
    let base = env_u64("KPATROL_MUTATION_SEED").unwrap_or(DEFAULT_SEED);
    let n = match env_u64("KPATROL_MUTATIONS") {
        Some(n) if in_process => n,
        _ => count,
    };
    (0..n).map(|i| case_seed(base, i)).collect()
}

// ---------------------------------------------------------------------------------------
// the examples

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every example task file, with its text.
fn examples() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("jobs"), root().join("tests/fixtures/kdoctor-examples")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 15, "examples missing: {out:?}");
    out
}

// ---------------------------------------------------------------------------------------
// mutations

/// Values that have broken readers before, or could: the list and neighbours.
const SCALARS: &[&str] = &[
    "",
    "''",
    "null",
    "~",
    "0",
    "-1",
    "-0",
    "1",
    "007",
    "0x1f",
    "0o17",
    "1.10",
    "1e3",
    "-1e400",
    "1e400",
    ".nan",
    ".inf",
    "-.inf",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "4294967296",
    "65536",
    "2147483647",
    "0.0000001",
    "true",
    "false",
    "yes",
    "[]",
    "{}",
    "[1, 2]",
    "{a: 1}",
    "[",
    "{",
    "\"a\\nb\"",
    "\"a\\tb\"",
    "\"\\u0000\"",
    "\"\\e[31mred\"",
    "\"line\\r\\nnext\"",
    "\" \"",
    "\"  \"",
    "\" x\"",
    "\"x \"",
    "\"a  b\"",
    "..",
    "../../../../etc",
    "/",
    "/etc/hostname",
    "a/b",
    "ünïcödé",
    "日本語",
    "\"😀\"",
    "xn--bcher-kva",
    "0s",
    "-1s",
    "0ms",
    "1e9h",
    "99999999999999999999s",
    "0.001ms",
    "1h30m",
    "\"0  * * *\"",
    "\"0 1 * * \"",
    "\" 0 1\"",
    "\"0 1 \"",
    "\"0  1\"",
    "\"* * * * * *\"",
    "\"@every 0m\"",
    "\"@every 1000000h\"",
    "\"@every\"",
    "\"61 * * * *\"",
    "\"*/0 * * * *\"",
    "\"0 0 31 2 *\"",
    "\"TZ=UTC 0 * * * *\"",
    "@once",
    "\"0 525601\"",
    "http://",
    "http://[::1",
    "http://a:99999/",
    "https://u:p@x/",
    "\"http://x/\\n\"",
    "ftp://x/",
    "\"%zz\"",
    "\"Bearer a:b\"",
    "!!str 10",
    "!!int x",
    "!!float abc",
    "!custom v",
    "!!binary aGk=",
    "&a x",
    "*a",
    "*missing",
    "<<",
    "|\n  block",
    ">-",
    "'it''s'",
    "\"\\x80\"",
    "\"\\ud800\"",
];

/// A long value, sometimes with a newline in it, as a double-quoted scalar.
fn long_value(rng: &mut Rng) -> String {
    let n = *rng.pick(&[100, 1_000, 100_000]);
    let c = *rng.pick(&["a", "é", "9", "-"]);
    let mut v = c.repeat(n);
    if rng.below(2) == 0 {
        v.insert_str(v.len() / 2, "\\n");
    }
    format!("\"{v}\"")
}

/// Splits `line` into its indentation with any `- `, its key with the colon, and its value.
fn key_value(line: &str) -> Option<(&str, &str, &str)> {
    let body = line.trim_start();
    let body = body.strip_prefix("- ").unwrap_or(body);
    let lead = line.len() - body.len();
    let colon = body
        .find(": ")
        .map(|i| i + 1)
        .or_else(|| body.ends_with(':').then_some(body.len()))?;
    let key = &line[lead..lead + colon];
    let value = line[lead + colon..].trim_start();
    Some((&line[..lead], key, value))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines of the block that starts at `i`: the line and the deeper ones after it.
fn block_end(lines: &[String], i: usize) -> usize {
    let ind = indent_of(&lines[i]);
    let mut j = i + 1;
    while j < lines.len() && (lines[j].trim().is_empty() || indent_of(&lines[j]) > ind) {
        j += 1;
    }
    j
}

/// A mutant: text, or bytes when a byte mutation made it invalid UTF-8.
enum Mutant {
    Text(String),
    Bytes(Vec<u8>),
}

/// Applies one mutation to `lines`, and says what it did.
fn mutate_lines(rng: &mut Rng, lines: &mut Vec<String>) -> String {
    if lines.is_empty() {
        lines.push("a: 1".into());
        return "empty file: add `a: 1`".into();
    }
    let i = rng.below(lines.len());
    let kv_lines: Vec<usize> = (0..lines.len()).filter(|&j| key_value(&lines[j]).is_some()).collect();
    match rng.below(18) {
        0 => {
            let l = lines.remove(i);
            format!("drop line {} `{l}`", i + 1)
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l.clone());
            format!("duplicate line {} `{l}`", i + 1)
        }
        2 if i + 1 < lines.len() => {
            lines.swap(i, i + 1);
            format!("swap lines {} and {}", i + 1, i + 2)
        }
        3 => {
            let d = *rng.pick(&[-4i32, -2, -1, 1, 2, 4]);
            let l = &lines[i];
            let ind = indent_of(l) as i32;
            let new = (ind + d).max(0) as usize;
            lines[i] = format!("{}{}", " ".repeat(new), l.trim_start());
            format!("indent line {} by {d}", i + 1)
        }
        4 => {
            let end = block_end(lines, i);
            let block: Vec<String> = lines[i..end].to_vec();
            for (k, l) in block.into_iter().enumerate() {
                lines.insert(end + k, l);
            }
            format!("duplicate block at line {}", i + 1)
        }
        5 => {
            let end = block_end(lines, i);
            lines.drain(i..end);
            format!("drop block at line {}", i + 1)
        }
        6 if i + 1 < lines.len() => {
            // swap a block with the next one at the same indentation
            let end = block_end(lines, i);
            if end < lines.len() && indent_of(&lines[end]) == indent_of(&lines[i]) {
                let end2 = block_end(lines, end);
                let second: Vec<String> = lines.drain(end..end2).collect();
                for (k, l) in second.into_iter().enumerate() {
                    lines.insert(i + k, l);
                }
                format!("swap blocks at lines {} and {}", i + 1, end + 1)
            } else {
                "no-op".into()
            }
        }
        7..=10 if !kv_lines.is_empty() => {
            let j = *rng.pick(&kv_lines);
            let (lead, key, old) = key_value(&lines[j]).unwrap();
            let new = if rng.below(12) == 0 {
                long_value(rng)
            } else {
                rng.pick(SCALARS).to_string()
            };
            let shown: String = new.chars().take(40).collect();
            let d = format!("line {} {key} `{old}` -> `{shown}`", j + 1);
            lines[j] = format!("{lead}{key} {new}");
            d
        }
        15 if !kv_lines.is_empty() => {
            // edit a value in place: one to three small edits, quoted so spaces stay
            let j = *rng.pick(&kv_lines);
            let (lead, key, old) = key_value(&lines[j]).unwrap();
            let mut v: Vec<char> = old.trim_matches(['"', '\'']).chars().collect();
            let mut edits = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(v.len() + 1);
                match rng.below(7) {
                    0 => {
                        let spaces: Vec<usize> = (0..v.len()).filter(|&k| v[k] == ' ').collect();
                        if let Some(&k) = spaces.get(rng.below(spaces.len().max(1))) {
                            v.insert(k, ' ');
                        }
                        edits.push("double a space");
                    }
                    1 => {
                        v.insert(0, ' ');
                        edits.push("leading space");
                    }
                    2 => {
                        v.push(' ');
                        edits.push("trailing space");
                    }
                    3 if at < v.len() => {
                        v.remove(at);
                        edits.push("delete a character");
                    }
                    4 => {
                        v.extend(" *".chars());
                        edits.push("append ` *`");
                    }
                    5 => {
                        let c = *rng.pick(&[' ', '.', '/', '-', '0', '9', 'é', '*', ':', '#', '%', '\t']);
                        v.insert(at, c);
                        edits.push("insert a character");
                    }
                    _ => {
                        let copy = v.clone();
                        v.push(' ');
                        v.extend(copy);
                        edits.push("repeat the value");
                    }
                }
            }
            let new: String = v.into_iter().collect();
            let quoted = format!(
                "\"{}\"",
                new.replace('\\', "\\\\").replace('"', "\\\"").replace('\t', "\\t")
            );
            let d = format!("line {} {key} `{old}` -> {quoted} ({})", j + 1, edits.join(", "));
            lines[j] = format!("{lead}{key} {quoted}");
            d
        }
        11 if !kv_lines.is_empty() => {
            // rename a key: a typo, a case change, an empty or numeric key, a duplicate
            let j = *rng.pick(&kv_lines);
            let (lead, key, value) = key_value(&lines[j]).unwrap();
            let name = key.trim_end_matches(':');
            let new = match rng.below(6) {
                0 => format!("{name}x"),
                1 => name.to_uppercase(),
                2 => "\"\"".to_string(),
                3 => "007".to_string(),
                4 => format!("\"{name}\\n\""),
                _ => name.chars().rev().collect(),
            };
            let d = format!("line {} rename key `{name}` to `{new}`", j + 1);
            lines[j] = format!("{lead}{new}: {value}");
            d
        }
        12 if kv_lines.len() >= 2 => {
            // anchor one value, alias it elsewhere (or merge it in)
            let a = *rng.pick(&kv_lines);
            let b = *rng.pick(&kv_lines);
            let (lead, key, value) = key_value(&lines[a]).unwrap();
            lines[a] = format!("{lead}{key} &x {value}");
            let (lead, key, _) = key_value(&lines[b]).unwrap();
            if rng.below(3) == 0 {
                let ind = " ".repeat(indent_of(&lines[b]));
                lines.insert(b + 1, format!("{ind}<<: *x"));
                format!("anchor line {}, merge it after line {}", a + 1, b + 1)
            } else {
                lines[b] = format!("{lead}{key} *x");
                format!("anchor line {}, alias at line {}", a + 1, b + 1)
            }
        }
        13 if !kv_lines.is_empty() => {
            // a block mapping rewritten in flow style (a child line joined into its parent)
            let j = *rng.pick(&kv_lines);
            let end = block_end(lines, j);
            let children: Vec<String> = lines[j + 1..end]
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
                .collect();
            if children.is_empty() || children.iter().any(|c| c.starts_with("- ") || c.ends_with(':')) {
                return "no-op".into();
            }
            let (lead, key, _) = key_value(&lines[j]).unwrap();
            let (lead, key) = (lead.to_string(), key.to_string());
            lines[j] = format!("{lead}{key} {{{}}}", children.join(", "));
            lines.drain(j + 1..end);
            format!("flow style for the block at line {}", j + 1)
        }
        14 => {
            let extra = *rng.pick(&[
                "---",
                "...",
                "--- !!map",
                "%YAML 1.2",
                "? [a]",
                "? {a: 1}",
                "x: !!set {a, b}",
                "\t- tab",
                "#comment",
                "- item",
                "spec: null",
                "spec:",
                "status: {}",
                "apiVersion: kdoctor.io/v1beta1",
                "kind: HttpCheck",
            ]);
            lines.insert(i, extra.to_string());
            format!("insert `{extra}` at line {}", i + 1)
        }
        16 | 17 => {
            // prefix a value with a tag
            if kv_lines.is_empty() {
                return "no-op".into();
            }
            let j = *rng.pick(&kv_lines);
            let (lead, key, value) = key_value(&lines[j]).unwrap();
            let tag = *rng.pick(&["!!str", "!!int", "!!float", "!!bool", "!!null", "!local", "!!seq"]);
            let d = format!("line {} tag `{tag}` on `{value}`", j + 1);
            lines[j] = format!("{lead}{key} {tag} {value}");
            d
        }
        _ => "no-op".into(),
    }
}

/// Applies a byte-level mutation: truncation, invalid UTF-8, control bytes, a BOM.
fn mutate_bytes(rng: &mut Rng, text: &str) -> (Mutant, String) {
    let mut b = text.as_bytes().to_vec();
    let at = rng.below(b.len() + 1);
    match rng.below(5) {
        0 => {
            // truncate on a character boundary, the file stays text
            let mut cut = at;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (Mutant::Text(text[..cut].to_string()), format!("truncate at byte {cut}"))
        }
        1 => {
            let bad = *rng.pick(&[0xffu8, 0xfe, 0x80, 0xc3, 0xed]);
            b.insert(at, bad);
            (Mutant::Bytes(b), format!("insert byte 0x{bad:02x} at {at}"))
        }
        2 => {
            let c = *rng.pick(&[0u8, 0x1b, b'\r', b'\t', 0x7f]);
            b.insert(at, c);
            (Mutant::Bytes(b), format!("insert byte 0x{c:02x} at {at}"))
        }
        3 => {
            b.truncate(at);
            (Mutant::Bytes(b), format!("truncate at byte {at} (maybe mid-character)"))
        }
        _ => {
            let mut v = "\u{feff}".as_bytes().to_vec();
            v.extend_from_slice(&b);
            (Mutant::Bytes(v), "BOM first".into())
        }
    }
}

/// The mutant of case `seed`: which example, and one to three mutations.
fn mutant(seed: u64, examples: &[(PathBuf, String)]) -> (PathBuf, Mutant, Vec<String>) {
    let mut rng = Rng(seed);
    let (path, text) = rng.pick(examples);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut done = Vec::new();
    for _ in 0..1 + rng.below(3) {
        done.push(mutate_lines(&mut rng, &mut lines));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let m = if rng.below(8) == 0 {
        let (m, d) = mutate_bytes(&mut rng, &text);
        done.push(d);
        m
    } else {
        Mutant::Text(text)
    };
    (path.clone(), m, done)
}

// ---------------------------------------------------------------------------------------
// checks

/// Why `line` is not `file:line:col: ` followed by a message, when it is not.
fn position_problem(line: &str, file: &str) -> Option<String> {
    let Some(rest) = line.strip_prefix(file).and_then(|r| r.strip_prefix(':')) else {
        return Some("does not start with the file name".into());
    };
    let mut parts = rest.splitn(3, ':');
    let (l, c, msg) = (parts.next()?, parts.next(), parts.next());
    let ok_num = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok()).is_some_and(|n| n >= 1);
    if !ok_num(Some(l)) || !ok_num(c) {
        return Some("no line:col of at least 1:1".into());
    }
    match msg {
        Some(m) if m.starts_with(' ') && m.trim().len() > 1 => None,
        _ => Some("no message after file:line:col".into()),
    }
}

/// Every problem with a diagnostic as printed: one line, positioned, with a field path.
fn diagnostic_problems(d: &Diagnostic, file: &str) -> Vec<String> {
    let line = d.to_string();
    let mut out = Vec::new();
    let short: String = line.chars().take(300).collect();
    if line.contains(['\n', '\r']) {
        out.push(format!("diagnostic spans lines: {short:?}"));
    }
    if line.len() > LINE_MAX {
        out.push(format!("diagnostic of {} bytes: {short:?}", line.len()));
    }
    if let Some(p) = position_problem(&line, file) {
        out.push(format!("{p}: {short:?}"));
    }
    if d.pos.line == 0 || d.pos.col == 0 {
        out.push(format!("position {:?}: {short:?}", d.pos));
    }
    if d.path.trim().is_empty() {
        out.push(format!("no field path: {short:?}"));
    }
    out
}

fn load_error_problems(e: &LoadError, file: &str) -> Vec<String> {
    let line = e.to_string();
    let short: String = line.chars().take(300).collect();
    let mut out = Vec::new();
    match e {
        LoadError::Syntax { .. } | LoadError::Encoding { .. } => {
            if let Some(p) = position_problem(&line, file) {
                out.push(format!("{p}: {short:?}"));
            }
        }
        other => out.push(format!("unexpected load error {other:?}")),
    }
    if line.contains(['\n', '\r']) {
        out.push(format!("load error spans lines: {short:?}"));
    }
    if line.len() > LINE_MAX {
        out.push(format!("load error of {} bytes: {short:?}", line.len()));
    }
    out
}

/// Loads, plans and renders one mutant; the problems found, if any.
/// `spent` adds up the time spent loading (and planning) and rendering.
/// `rendered` holds the plans rendered already: rendering is pure, the same plans render the same.
fn run_in_process(
    path: &Path,
    m: &Mutant,
    scratch: &Path,
    spent: &mut [Duration; 2],
    rendered: &mut HashSet<u64>,
) -> Vec<String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let t = Instant::now();
        let (loaded, file) = match m {
            Mutant::Text(t) => (load_str(path, t), path.display().to_string()),
            Mutant::Bytes(b) => {
                // bytes go through the file reader, as the binary reads them
                let f = scratch.join(path.file_name().unwrap());
                std::fs::write(&f, b).unwrap();
                (load_file(&f), f.display().to_string())
            }
        };
        let ft = match loaded {
            Ok(ft) => ft,
            Err(e) => return load_error_problems(&e, &file),
        };
        spent[0] += t.elapsed();
        let mut problems = Vec::new();
        for d in &ft.diagnostics {
            problems.extend(diagnostic_problems(d, &file));
        }
        let mut key = DefaultHasher::new();
        for p in &ft.plans {
            // every part of a plan is readable: it serialises, and its targets are listed
            match serde_json::to_string(p) {
                Ok(json) => (json, p.origin.document.to_string()).hash(&mut key),
                Err(e) => problems.push(format!("plan {} does not serialise: {e}", p.name)),
            }
            if p.targets().iter().any(|(n, _)| n.is_empty()) {
                problems.push(format!("plan {} has a nameless target", p.name));
            }
        }
        if !ft.plans.is_empty() && rendered.insert(key.finish()) {
            let t = Instant::now();
            let opts = RenderOptions {
                image: "registry.example/kpatrol:test".into(),
            };
            let diags = match render(&ft.plans, &opts) {
                Ok(r) => r.warnings,
                Err(errors) => errors,
            };
            spent[1] += t.elapsed();
            for d in &diags {
                problems.extend(diagnostic_problems(d, &file));
            }
        }
        problems
    }));
    result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        vec![format!("PANIC: {msg}")]
    })
}

/// One failing case, ready to replay.
fn failure(seed: u64, path: &Path, mutations: &[String], problems: &[String]) -> String {
    format!(
        "case seed {seed:#x} ({}; replay: KPATROL_MUTATION_CASE={seed:#x}):\n  mutations: {}\n  {}",
        path.strip_prefix(root()).unwrap_or(path).display(),
        mutations.join("; "),
        problems.join("\n  ")
    )
}

fn report(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} mutant(s) failed; the first ones:\n\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// the suites

#[test]
fn mutants_load_plan_and_render_without_panic_in_bounded_time() {
    let examples = examples();
    let seeds = case_seeds(IN_PROCESS, true);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let started = Instant::now();
    let chunks: Vec<&[u64]> = seeds.chunks(seeds.len().div_ceil(workers).max(1)).collect();
    let failures = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let examples = &examples;
                s.spawn(move || {
                    let scratch = tempfile::tempdir().unwrap();
                    let mut failures = Vec::new();
                    let mut spent = [Duration::ZERO; 2];
                    let mut rendered = HashSet::new();
                    for &seed in *chunk {
                        let (path, m, mutations) = mutant(seed, examples);
                        let t = Instant::now();
                        let mut problems = run_in_process(&path, &m, scratch.path(), &mut spent, &mut rendered);
                        let took = t.elapsed();
                        if took > PER_FILE {
                            problems.push(format!("took {took:?}, more than {PER_FILE:?}"));
                        }
                        if !problems.is_empty() {
                            failures.push(failure(seed, &path, &mutations, &problems));
                        }
                    }
                    (failures, spent)
                })
            })
            .collect();
        let mut spent = [Duration::ZERO; 2];
        let mut failures = Vec::new();
        for h in handles {
            let (f, s) = h.join().unwrap();
            failures.extend(f);
            spent[0] += s[0];
            spent[1] += s[1];
        }
        (failures, spent)
    });
    let (failures, spent) = failures;
    eprintln!(
        "{} mutants in {:?} ({workers} threads; loading {:?}, rendering {:?})",
        seeds.len(),
        started.elapsed(),
        spent[0],
        spent[1]
    );
    report(&failures, seeds.len());
}

/// Runs the binary on one mutant; the problems with its exit code and output.
fn run_binary(command: &str, dir: &Path, path: &Path, m: &Mutant) -> Vec<String> {
    let f = dir.join(path.file_name().unwrap());
    let bytes: &[u8] = match m {
        Mutant::Text(t) => t.as_bytes(),
        Mutant::Bytes(b) => b,
    };
    std::fs::write(&f, bytes).unwrap();
    let out_dir = dir.join("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpatrol"));
    cmd.arg(command).arg(&f);
    if command == "render" {
        cmd.arg("-o").arg(&out_dir);
    }
    let t = Instant::now();
    let o = cmd.output().expect("kpatrol runs");
    let took = t.elapsed();
    let mut problems = Vec::new();
    let code = o.status.code();
    if !matches!(code, Some(0..=2)) {
        problems.push(format!("exit code {code:?} (signal or panic)"));
    }
    if took > PER_FILE * 5 {
        problems.push(format!("took {took:?}"));
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("panicked") {
        problems.push(format!("panic: {stderr}"));
    }
    // every problem line names the file and its position; the last line is the summary
    let file = f.display().to_string();
    let report = if command == "validate" { &stdout } else { &stderr };
    for line in report.lines() {
        let summary = line.contains(" file(s), ") || line.starts_with("kpatrol: ");
        if !summary && let Some(p) = position_problem(line, &file) {
            let short: String = line.chars().take(300).collect();
            problems.push(format!("{p}: {short:?}"));
        }
    }
    if command == "validate" && !stdout.lines().last().is_some_and(|l| l.contains(" file(s), ")) {
        problems.push("no summary line".into());
    }
    problems
}

fn binary_suite(command: &str, salt: u64) {
    let examples = examples();
    let seeds: Vec<u64> = case_seeds(THROUGH_BINARY, false)
        .into_iter()
        .map(|s| s ^ salt)
        .collect();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let dir = tempfile::tempdir().unwrap();
        let (path, m, mutations) = mutant(seed, &examples);
        let problems = run_binary(command, dir.path(), &path, &m);
        if !problems.is_empty() {
            failures.push(failure(seed, &path, &mutations, &problems));
        }
    }
    report(&failures, seeds.len());
}

#[test]
fn validate_binary_exits_0_1_or_2_on_mutants() {
    binary_suite("validate", 0);
}

#[test]
fn render_binary_exits_0_1_or_2_on_mutants() {
    binary_suite("render", 0x5eed);
}

#[test]
fn the_generator_is_deterministic_and_mutates() {
    let examples = examples();
    let a: Vec<_> = (0..50).map(|i| mutant(case_seed(1, i), &examples).2).collect();
    let b: Vec<_> = (0..50).map(|i| mutant(case_seed(1, i), &examples).2).collect();
    assert_eq!(a, b);
    let changed = (0..200)
        .filter(|&i| {
            let (p, m, _) = mutant(case_seed(2, i), &examples);
            let orig = &examples.iter().find(|(q, _)| *q == p).unwrap().1;
            match m {
                Mutant::Text(t) => t != *orig,
                Mutant::Bytes(_) => true,
            }
        })
        .count();
    assert!(changed > 150, "only {changed} of 200 mutants differ from their example");
}
