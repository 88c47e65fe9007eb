//! A YAML document as a tree of nodes that remember their line and column, with `${VAR}`
//! expansion applied to scalar values (not keys). The environment is passed in: this module
//! reads nothing.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{Diagnostic, Diagnostics, Pos};

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// What a node holds. Plain scalars are already resolved to null/bool/number/string.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys with their own positions, in document order.
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// A short word for error messages ("a string", "a list", ...), never the value itself.
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a map",
        }
    }
}

impl Node {
    /// The key as text, for map keys.
    pub fn key_str(&self) -> String {
        match &self.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Null => "null".into(),
            other => other.describe().to_string(),
        }
    }

    /// Converts to a JSON value (used for free-form maps such as `overrides`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_str(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    stack: Vec<Frame>,
    anchors: BTreeMap<usize, Node>,
    root: Option<Node>,
    diags: Diagnostics,
    collection_anchors: Vec<(Pos, usize)>,
}

impl Builder<'_> {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }

    fn scalar(&mut self, raw: String, style: TScalarStyle, p: Pos) -> NodeKind {
        let raw = restore_references(raw);
        // Keys are names, not values: `${VAR}` is expanded in values only, so an environment
        // value never becomes a key (and is never echoed as an "unknown key").
        if matches!(self.stack.last(), Some(Frame::Map(_, _, None))) {
            return if style == TScalarStyle::Plain {
                resolve_plain(raw)
            } else {
                NodeKind::Str(raw)
            };
        }
        let text = expand_env(&raw, p, self.env, &mut self.diags);
        if style != TScalarStyle::Plain {
            return NodeKind::Str(text);
        }
        if text != raw {
            return resolve_expanded(text);
        }
        resolve_plain(text)
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let p = pos(mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let kind = self.scalar(value, style, p);
                self.push_node(Node { pos: p, kind }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(p, Vec::new()));
                // remember the anchor on the frame by pushing a marker entry
                if anchor > 0 {
                    self.anchors.insert(
                        anchor,
                        Node {
                            pos: p,
                            kind: NodeKind::Null,
                        },
                    );
                    self.pending_anchor_fix(anchor);
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(start, items)) = self.stack.pop() {
                    let anchor = self.take_anchor_for(start);
                    self.push_node(
                        Node {
                            pos: start,
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    );
                }
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(p, Vec::new(), None));
                if anchor > 0 {
                    self.anchors.insert(
                        anchor,
                        Node {
                            pos: p,
                            kind: NodeKind::Null,
                        },
                    );
                    self.pending_anchor_fix(anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(start, entries, _)) = self.stack.pop() {
                    let anchor = self.take_anchor_for(start);
                    self.push_node(
                        Node {
                            pos: start,
                            kind: NodeKind::Map(entries),
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    pos: p,
                    kind: NodeKind::Null,
                });
                self.push_node(Node { pos: p, ..node }, 0);
            }
            _ => {}
        }
    }
}

impl Builder<'_> {
    // Anchors on collections: the node is only complete at its end event, so remember which
    // anchor id belongs to the collection that started at a given position.
    fn pending_anchor_fix(&mut self, anchor: usize) {
        let start = match self.stack.last() {
            Some(Frame::Seq(p, _)) | Some(Frame::Map(p, _, _)) => *p,
            None => return,
        };
        self.collection_anchors.push((start, anchor));
    }
    fn take_anchor_for(&mut self, start: Pos) -> usize {
        match self
            .collection_anchors
            .iter()
            .position(|(p, _)| *p == start)
        {
            Some(i) => self.collection_anchors.remove(i).1,
            None => 0,
        }
    }
}

/// Resolves a plain (unquoted) scalar the way YAML 1.2's core schema does.
fn resolve_plain(text: String) -> NodeKind {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    let looks_numeric = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return NodeKind::Int(i);
        }
        if let Some(hex) = text.strip_prefix("0x")
            && let Ok(i) = i64::from_str_radix(hex, 16)
        {
            return NodeKind::Int(i);
        }
        if text.chars().any(|c| c.is_ascii_digit())
            && let Ok(f) = text.parse::<f64>()
        {
            return NodeKind::Float(f);
        }
    }
    NodeKind::Str(text)
}

/// A plain scalar that came out of `${VAR}` expansion: the environment holds text, so only
/// a value whose canonical rendering is exactly that text becomes a number or a boolean
/// (`9090`, `true`). Anything else stays the string it was, so a credential such as `0123`,
/// `1e3`, `True`, `null` or an empty value reaches a string field unchanged.
fn resolve_expanded(text: String) -> NodeKind {
    match resolve_plain(text.clone()) {
        NodeKind::Int(i) if i.to_string() == text => NodeKind::Int(i),
        NodeKind::Bool(b) if b.to_string() == text => NodeKind::Bool(b),
        _ => NodeKind::Str(text),
    }
}

/// Stand-ins for the braces of `${VAR}` while the YAML parser runs. `{` and `}` are flow
/// indicators, so without them `auth: { approle: { role_id: ${VAULT_ROLE_ID} } }` (the
/// documented example) is a syntax error. One character each, so lines and columns are
/// unchanged; every scalar gets its braces back before expansion.
const OPEN_REF: char = '\u{E000}';
const CLOSE_REF: char = '\u{E001}';

/// Replaces the braces of each `${...}` that closes on the same line with the stand-ins.
fn protect_references(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains("${") {
        return std::borrow::Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..=i]);
        let tail = &rest[i + 2..];
        match tail.find(['}', '\n']) {
            Some(end) if tail[end..].starts_with('}') => {
                out.push(OPEN_REF);
                out.push_str(&tail[..end]);
                out.push(CLOSE_REF);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('{');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn restore_references(s: String) -> String {
    if s.contains([OPEN_REF, CLOSE_REF]) {
        s.replace(OPEN_REF, "{").replace(CLOSE_REF, "}")
    } else {
        s
    }
}

/// Expands `${VAR}` from the environment; `$${` is a literal `${`. An unset variable is an
/// error (never an empty string).
fn expand_env(
    raw: &str,
    p: Pos,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> String {
    if !raw.contains('$') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) => {
                    let name = &tail[..end];
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit());
                    if !valid {
                        diags.push(
                            Diagnostic::error(
                                Some(p),
                                "",
                                format!("`${{{name}}}` is not a valid environment variable reference"),
                            )
                            .with_help("use `${NAME}` with letters, digits and underscores, or `$${` for a literal `${`"),
                        );
                    } else {
                        match env(name) {
                            Some(v) => out.push_str(&v),
                            None => diags.push(
                                Diagnostic::error(
                                    Some(p),
                                    "",
                                    format!("environment variable `{name}` is not set"),
                                )
                                .with_help(format!(
                                    "export {name} before running, or write the value in the config"
                                )),
                            ),
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    diags.push(
                        Diagnostic::error(Some(p), "", "unterminated `${` in value")
                            .with_help("close it with `}`, or write `$${` for a literal `${`"),
                    );
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Parses one YAML document into a [`Node`] tree. Syntax errors and unset variables are
/// returned as diagnostics; a syntax error yields no tree.
pub fn parse(source: &str, env: &dyn Fn(&str) -> Option<String>) -> (Option<Node>, Diagnostics) {
    let mut builder = Builder {
        env,
        stack: Vec::new(),
        anchors: BTreeMap::new(),
        root: None,
        diags: Diagnostics::default(),
        collection_anchors: Vec::new(),
    };
    let source = protect_references(source);
    let mut parser = Parser::new_from_str(&source);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        builder.diags.push(
            Diagnostic::error(Some(pos(*m)), "", format!("invalid YAML: {}", e.info()))
                .with_help("fix the syntax at this position"),
        );
        return (None, builder.diags);
    }
    let root = builder.root.take().unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: NodeKind::Map(Vec::new()),
    });
    (Some(root), builder.diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, env: &[(&str, &str)]) -> (serde_json::Value, Vec<String>) {
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let (node, diags) = parse(src, &lookup);
        (
            node.map(|n| n.to_json()).unwrap_or_default(),
            diags.0.iter().map(|d| d.to_string()).collect(),
        )
    }

    #[test]
    fn resolves_scalars_and_positions() {
        let (json, diags) = check("a: 1\nb: 'x'\nc: [true, ~, 1.5]\nd: {e: null}\n", &[]);
        assert!(diags.is_empty());
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "b": "x", "c": [true, null, 1.5], "d": {"e": null}})
        );
        let (node, _) = parse("a:\n  b: 1\n", &|_| None);
        let NodeKind::Map(entries) = node.unwrap().kind else {
            panic!("not a map")
        };
        let NodeKind::Map(inner) = &entries[0].1.kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
    }

    #[test]
    fn expands_env_and_reports_unset() {
        let (json, diags) = check("a: ${X}\nb: \"${Y}-z\"\nc: $${X}\n", &[("X", "42")]);
        assert_eq!(json["a"], serde_json::json!(42));
        assert_eq!(json["c"], serde_json::json!("${X}"));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].contains("line 2"), "{diags:?}");
        assert!(diags[0].contains("`Y` is not set"), "{diags:?}");
    }

    #[test]
    fn anchors_and_aliases() {
        let (json, _) = check("a: &x {k: 1}\nb: *x\n", &[]);
        assert_eq!(json["b"], serde_json::json!({"k": 1}));
    }

    #[test]
    fn syntax_error_has_line() {
        let (_, diags) = check("a: [1, 2\nb: 3\n", &[]);
        assert_eq!(diags.len(), 1);
        assert!(diags[0].contains("invalid YAML"), "{diags:?}");
    }
}
