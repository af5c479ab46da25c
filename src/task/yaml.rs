//! A YAML node tree that keeps the line and column of every node and every mapping key,
//! built from saphyr-parser's events. Scalars are resolved by the YAML 1.2 core schema
//! (so `yes` is a string, `0 1` is a string, `10` an integer).

use std::collections::HashSet;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diag::Pos;

/// Upper bound on nodes per document, so alias bombs cannot exhaust memory.
const MAX_NODES: usize = 200_000;
/// Upper bound on nesting, so deep documents cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
    /// The source text of a plain scalar that resolved to something other than a string
    /// (`1.10`, `007`, `0x1f`, `true`, `~`), so a field read as a string keeps what was written.
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    /// The YAML type name used in "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// The value of `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One document of a YAML stream.
#[derive(Debug)]
pub struct Document {
    pub pos: Pos,
    pub root: Node,
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Parses every document of `text`. Empty documents (only comments) are skipped.
pub fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
        nodes: 0,
        depth: 0,
    };
    let mut docs = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                b.anchors.clear();
                b.nodes = 0;
                let (ev, span2) = b.next()?;
                if ev == Event::DocumentEnd {
                    continue;
                }
                let root = b.node(ev, span2)?;
                if root.value != Value::Null {
                    docs.push(Document {
                        pos: pos_of(&span),
                        root,
                    });
                }
            }
            other => {
                return Err(SyntaxError {
                    pos: pos_of(&span),
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        }
    }
    Ok(docs)
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: Vec<(usize, Node)>,
    nodes: usize,
    depth: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(x)) => Ok(x),
            Some(Err(e)) => Err(SyntaxError {
                pos: Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                },
                message: e.info().to_string(),
            }),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn count(&mut self, pos: Pos, add: usize) -> Result<(), SyntaxError> {
        self.nodes += add;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos,
                message: format!("document has more than {MAX_NODES} nodes"),
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let pos = pos_of(&span);
        self.count(pos, 1)?;
        if self.depth >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.depth += 1;
        let node = self.node_inner(ev, pos);
        self.depth -= 1;
        node
    }

    fn node_inner(&mut self, ev: Event<'a>, pos: Pos) -> Result<Node, SyntaxError> {
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let (value, text) = if style == ScalarStyle::Plain && !tagged_str {
                    match resolve_plain(&text) {
                        v @ Value::Str(_) => (v, None),
                        v => (v, Some(text.into_owned())),
                    }
                } else {
                    (Value::Str(text.into_owned()), None)
                };
                (Node { pos, value, text }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(ev, sp)?);
                }
                (
                    Node {
                        pos,
                        value: Value::Seq(items),
                        text: None,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                // a set, so a mapping with many keys is checked in linear time
                let mut names: HashSet<String> = HashSet::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if ev == Event::MappingEnd {
                        break;
                    }
                    let key_node = self.node(ev, sp)?;
                    // a plain key is its source text: `007:` is the key "007", not "7"
                    let name = match (&key_node.value, &key_node.text) {
                        (Value::Str(s), _) => s.clone(),
                        (Value::Int(_) | Value::Bool(_) | Value::Float(_) | Value::Null, Some(t)) if !t.is_empty() => {
                            t.clone()
                        }
                        (Value::Int(i), None) => i.to_string(),
                        (Value::Bool(b), None) => b.to_string(),
                        (Value::Float(f), None) => f.to_string(),
                        (Value::Null, None) => "null".to_string(),
                        _ => {
                            return Err(SyntaxError {
                                pos: key_node.pos,
                                message: "mapping keys must be plain values, not lists or mappings".into(),
                            });
                        }
                    };
                    if !names.insert(name.clone()) {
                        return Err(SyntaxError {
                            pos: key_node.pos,
                            message: format!("duplicate key `{name}` in the same mapping"),
                        });
                    }
                    let (ev, sp) = self.next()?;
                    let value = self.node(ev, sp)?;
                    entries.push((
                        Key {
                            name,
                            pos: key_node.pos,
                        },
                        value,
                    ));
                }
                (
                    Node {
                        pos,
                        value: Value::Map(entries),
                        text: None,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let found = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone());
                let Some(mut n) = found else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                self.count(pos, size(&n))?;
                n.pos = pos;
                return Ok(n);
            }
            other => {
                return Err(SyntaxError {
                    pos,
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        };
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }
}

fn size(n: &Node) -> usize {
    match &n.value {
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(t: &str) -> Value {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits(unsigned)
        && let Ok(i) = t.parse::<i64>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = t.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = t.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let looks_float = unsigned.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float && let Ok(f) = t.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let docs = parse("a: 1\nb:\n  c: [x, 2.5]\n---\nd: yes\n").unwrap();
        assert_eq!(docs.len(), 2);
        let root = &docs[0].root;
        let Value::Map(entries) = &root.value else { panic!() };
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let c = root.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        let Value::Seq(items) = &c.value else { panic!() };
        assert_eq!(items[0].value, Value::Str("x".into()));
        assert_eq!(items[1].value, Value::Float(2.5));
        assert_eq!(docs[1].root.get("d").unwrap().value, Value::Str("yes".into()));
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let docs = parse("a: 0 1\nb: '10'\nc: 10\nd: ~\ne: true\nf: -3\ng: 1e3\nh: 0x1f\n").unwrap();
        let r = &docs[0].root;
        assert_eq!(r.get("a").unwrap().value, Value::Str("0 1".into()));
        assert_eq!(r.get("b").unwrap().value, Value::Str("10".into()));
        assert_eq!(r.get("c").unwrap().value, Value::Int(10));
        assert_eq!(r.get("d").unwrap().value, Value::Null);
        assert_eq!(r.get("e").unwrap().value, Value::Bool(true));
        assert_eq!(r.get("f").unwrap().value, Value::Int(-3));
        assert_eq!(r.get("g").unwrap().value, Value::Float(1000.0));
        assert_eq!(r.get("h").unwrap().value, Value::Int(31));
    }

    #[test]
    fn reports_syntax_errors_and_duplicates_with_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 1 });
        assert!(e.message.contains("duplicate key `a`"));
    }

    #[test]
    fn aliases_expand_and_bombs_are_bounded() {
        let docs = parse("x: &a {k: 1}\ny: *a\n").unwrap();
        assert_eq!(docs[0].root.get("y").unwrap().get("k").unwrap().value, Value::Int(1));
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 0..8 {
            bomb += &format!(
                "b{i}: &b{i} [{}]\n",
                vec![
                    if i == 0 {
                        "*a".to_string()
                    } else {
                        format!("*b{}", i - 1)
                    };
                    10
                ]
                .join(",")
            );
        }
        assert!(parse(&bomb).unwrap_err().message.contains("more than"));
    }
}
