//! A YAML document as a tree of nodes that remember their line and column, with `${VAR}`
//! expansion applied to scalar values (not keys). The environment is passed in: this module
//! reads nothing.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{Diagnostic, Diagnostics, Pos};

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// What a node holds. Plain scalars are already resolved to null/bool/number/string.
/// `Debug` shows the shape, never a scalar: a value may be a credential from `${VAR}`.
#[derive(Clone, PartialEq)]
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

impl std::fmt::Debug for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeKind::Null => f.write_str("Null"),
            NodeKind::Bool(_) => f.write_str("Bool(..)"),
            NodeKind::Int(_) => f.write_str("Int(..)"),
            NodeKind::Float(_) => f.write_str("Float(..)"),
            NodeKind::Str(s) => write!(f, "Str(<{} bytes>)", s.len()),
            NodeKind::Seq(items) => f.debug_tuple("Seq").field(items).finish(),
            NodeKind::Map(entries) => f.debug_tuple("Map").field(entries).finish(),
        }
    }
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

/// The largest config accepted, in bytes. A real config is a few kilobytes.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of lists and maps accepted (the document itself is level 1). Every
/// later stage walks the tree recursively, so the depth is capped where the tree is built.
pub const MAX_NESTING: usize = 64;
/// The most values (scalars, lists and maps, counting every copy an alias makes and every
/// anchored node kept for later aliases) one document may build: the cap that defeats alias
/// bombs ("billion laughs").
pub const MAX_NODES: usize = 200_000;
/// The most bytes of scalar text one document may build, counting alias copies and `${VAR}`
/// expansions.
pub const MAX_SCALAR_BYTES: usize = 16 * 1024 * 1024;

/// What a finished node costs: every copy of it (an alias, the anchor table) costs as much.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
    /// 1 for a scalar; a collection is one more than its deepest child.
    height: usize,
}

impl Size {
    fn add_child(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.height = self.height.max(child.height.saturating_add(1));
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        size: Size,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        /// The key whose value comes next.
        pending: Option<Node>,
        size: Size,
    },
}

struct Builder<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    stack: Vec<Frame>,
    /// Finished anchored nodes by anchor id, with what a copy costs.
    anchors: BTreeMap<usize, (Node, Size)>,
    root: Option<Node>,
    diags: Diagnostics,
    /// Everything built so far, copies included.
    spent: Size,
    /// Set when a limit is hit: the build stops and the document is rejected.
    abort: Option<Diagnostic>,
    /// Whether an alias has been expanded yet (then a budget overrun is blamed on aliases).
    aliased: bool,
}

impl Builder<'_> {
    /// The key path of the node being built, for diagnostics (`targets[0].overrides`).
    fn path(&self) -> String {
        let mut out = String::new();
        for f in &self.stack {
            match f {
                Frame::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Frame::Map {
                    pending: Some(k), ..
                } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&k.key_str());
                }
                Frame::Map { .. } => {}
            }
        }
        out
    }

    fn stop(&mut self, p: Pos, message: String, help: &str) {
        if self.abort.is_none() {
            self.abort = Some(Diagnostic::error(Some(p), self.path(), message).with_help(help));
        }
    }

    /// Charges a node (or a copy of one) to the document's budget; false when over it.
    fn charge(&mut self, size: Size, p: Pos, alias: bool) -> bool {
        self.aliased |= alias;
        let alias = self.aliased;
        self.spent.nodes = self.spent.nodes.saturating_add(size.nodes);
        self.spent.bytes = self.spent.bytes.saturating_add(size.bytes);
        if self.spent.nodes > MAX_NODES {
            let message = if alias {
                format!("aliases expand the document past {MAX_NODES} values (an alias bomb?)")
            } else {
                format!("the document has more than {MAX_NODES} values")
            };
            self.stop(
                p,
                message,
                "a config needs far fewer values; write them out or use fewer nested aliases",
            );
            return false;
        }
        if self.spent.bytes > MAX_SCALAR_BYTES {
            let message = format!(
                "the document's values {} past {} MiB",
                if alias {
                    "expand through aliases"
                } else {
                    "grow"
                },
                MAX_SCALAR_BYTES / (1024 * 1024)
            );
            self.stop(
                p,
                message,
                "a config needs far less text; check the aliases and `${VAR}` values here",
            );
            return false;
        }
        true
    }

    fn push_node(&mut self, node: Node, size: Size, anchor: usize) {
        if anchor > 0 {
            // The anchor table keeps a copy for later aliases: it costs like one.
            if !self.charge(size, node.pos, false) {
                return;
            }
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq {
                items, size: fsize, ..
            }) => {
                fsize.add_child(size);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                pending,
                size: fsize,
                ..
            }) => {
                fsize.add_child(size);
                match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                }
            }
        }
    }

    fn scalar(&mut self, raw: String, style: TScalarStyle, p: Pos) -> Option<NodeKind> {
        let raw = restore_references(raw);
        // Keys are names, not values: `${VAR}` is expanded in values only, so an environment
        // value never becomes a key (and is never echoed as an "unknown key").
        if matches!(self.stack.last(), Some(Frame::Map { pending: None, .. })) {
            return Some(if style == TScalarStyle::Plain {
                resolve_plain(raw)
            } else {
                NodeKind::Str(raw)
            });
        }
        let room = MAX_SCALAR_BYTES.saturating_sub(self.spent.bytes);
        let Some(text) = expand_env(&raw, p, self.env, &mut self.diags, room) else {
            self.stop(
                p,
                format!(
                    "`${{VAR}}` expansion makes the document's values larger than {} MiB",
                    MAX_SCALAR_BYTES / (1024 * 1024)
                ),
                "check the environment variables referenced here",
            );
            return None;
        };
        if style != TScalarStyle::Plain {
            return Some(NodeKind::Str(text));
        }
        if text != raw {
            return Some(resolve_expanded(text));
        }
        Some(resolve_plain(text))
    }

    /// A list or map opens: refuse it when it would nest too deep.
    fn open(&mut self, p: Pos) -> bool {
        if self.stack.len() >= MAX_NESTING {
            self.stop(
                p,
                format!("lists and maps nest deeper than {MAX_NESTING} levels here"),
                "flatten this part of the config",
            );
            return false;
        }
        true
    }

    fn on_event(&mut self, ev: Event, mark: Marker) {
        let p = pos(mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let Some(kind) = self.scalar(value, style, p) else {
                    return;
                };
                let bytes = match &kind {
                    NodeKind::Str(s) => s.len(),
                    _ => 0,
                };
                let size = Size {
                    nodes: 1,
                    bytes,
                    height: 1,
                };
                if self.charge(size, p, false) {
                    self.push_node(Node { pos: p, kind }, size, anchor);
                }
            }
            // `open` refuses a collection past the nesting limit and stops the build.
            Event::SequenceStart(anchor, _) if self.open(p) => {
                self.stack.push(Frame::Seq {
                    pos: p,
                    anchor,
                    items: Vec::new(),
                    size: Size::default(),
                });
            }
            Event::MappingStart(anchor, _) if self.open(p) => {
                self.stack.push(Frame::Map {
                    pos: p,
                    anchor,
                    entries: Vec::new(),
                    pending: None,
                    size: Size::default(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, mut size, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        pos,
                        anchor,
                        items,
                        size,
                    }) => (
                        Node {
                            pos,
                            kind: NodeKind::Seq(items),
                        },
                        size,
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        size,
                        ..
                    }) => (
                        Node {
                            pos,
                            kind: NodeKind::Map(entries),
                        },
                        size,
                        anchor,
                    ),
                    None => return,
                };
                size.nodes = size.nodes.saturating_add(1);
                size.height = size.height.max(1);
                let own = Size {
                    nodes: 1,
                    bytes: 0,
                    height: 1,
                };
                if self.charge(own, node.pos, false) {
                    self.push_node(node, size, anchor);
                }
            }
            Event::Alias(id) => {
                // An alias to an anchor that is not finished yet (`&a [*a]`) is null.
                let Some(size) = self.anchors.get(&id).map(|(_, s)| *s) else {
                    let size = Size {
                        nodes: 1,
                        bytes: 0,
                        height: 1,
                    };
                    if self.charge(size, p, false) {
                        self.push_node(
                            Node {
                                pos: p,
                                kind: NodeKind::Null,
                            },
                            size,
                            0,
                        );
                    }
                    return;
                };
                if self.stack.len().saturating_add(size.height) > MAX_NESTING {
                    self.stop(
                        p,
                        format!("this alias nests lists and maps deeper than {MAX_NESTING} levels"),
                        "flatten the anchored value or the place it is used",
                    );
                    return;
                }
                if !self.charge(size, p, true) {
                    return;
                }
                let Some((node, _)) = self.anchors.get(&id) else {
                    return;
                };
                let node = Node {
                    pos: p,
                    kind: node.kind.clone(),
                };
                self.push_node(node, size, 0);
            }
            _ => {}
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
/// error (never an empty string). `None` when the result would be longer than `room` bytes.
fn expand_env(
    raw: &str,
    p: Pos,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
    room: usize,
) -> Option<String> {
    if !raw.contains('$') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        if out.len() > room {
            return None;
        }
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
                            Some(v) if out.len().saturating_add(v.len()) > room => return None,
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
    (out.len() <= room).then_some(out)
}

/// Parses one YAML document into a [`Node`] tree. Syntax errors, unset variables and
/// documents over the limits ([`MAX_SOURCE_BYTES`], [`MAX_NESTING`], [`MAX_NODES`],
/// [`MAX_SCALAR_BYTES`]) are returned as diagnostics; a syntax error or a limit yields no tree.
/// Only the first document of a stream is read.
pub fn parse(source: &str, env: &dyn Fn(&str) -> Option<String>) -> (Option<Node>, Diagnostics) {
    let mut builder = Builder {
        env,
        stack: Vec::new(),
        anchors: BTreeMap::new(),
        root: None,
        diags: Diagnostics::default(),
        spent: Size::default(),
        abort: None,
        aliased: false,
    };
    if source.len() > MAX_SOURCE_BYTES {
        builder.diags.push(too_large());
        return (None, builder.diags);
    }
    let source = protect_references(source);
    // Events are pulled one at a time (the parser's own `load` recurses once per nesting
    // level, so a deeply nested document would overflow the stack before any limit applies).
    let mut parser = Parser::new_from_str(&source);
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                builder.diags.push(
                    Diagnostic::error(Some(pos(*m)), "", format!("invalid YAML: {}", e.info()))
                        .with_help("fix the syntax at this position"),
                );
                return (None, builder.diags);
            }
        };
        if matches!(ev, Event::DocumentEnd | Event::StreamEnd) {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(d) = builder.abort.take() {
            builder.diags.push(d);
            return (None, builder.diags);
        }
    }
    let root = builder.root.take().unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: NodeKind::Map(Vec::new()),
    });
    (Some(root), builder.diags)
}

/// The diagnostic for a config over [`MAX_SOURCE_BYTES`].
pub fn too_large() -> Diagnostic {
    Diagnostic::error(
        None,
        "",
        format!(
            "the config is larger than {} MiB",
            MAX_SOURCE_BYTES / (1024 * 1024)
        ),
    )
    .with_help("a config is a few kilobytes; check that `--config` names the right file")
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

    /// The classic "billion laughs": nine levels of nine aliases each would expand to 9^9
    /// strings. The build stops at the budget and names the alias's line.
    #[test]
    fn alias_bombs_are_stopped_at_the_line_that_explodes() {
        let mut src = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(", ");
            src.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
        }
        let (node, diags) = parse(&src, &|_| None);
        assert!(node.is_none());
        assert_eq!(diags.0.len(), 1, "{diags}");
        let d = &diags.0[0];
        assert!(d.message.contains("alias bomb"), "{d}");
        // Lines 1-5 build about 150000 values (each anchored list is kept once more for its
        // aliases); the first alias on line 6 adds 9^5 and passes the budget of 200000.
        assert_eq!(d.pos.map(|p| p.line), Some(6), "{d}");
        assert_eq!(d.key, "f[0]", "{d}");
    }

    #[test]
    fn aliases_within_the_budget_still_work() {
        let (json, diags) = check("a: &a {k: [1, 2]}\nb: [*a, *a]\n", &[]);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(json["b"], serde_json::json!([{"k": [1, 2]}, {"k": [1, 2]}]));
    }

    #[test]
    fn an_alias_to_an_unfinished_anchor_is_null() {
        let (json, diags) = check("a: &a [1, *a]\n", &[]);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(json["a"], serde_json::json!([1, null]));
    }

    #[test]
    fn one_big_string_copied_by_many_aliases_is_stopped() {
        let big = "x".repeat(1024 * 1024);
        let src = format!("a: &a {big}\nb: [{}]\n", vec!["*a"; 40].join(", "));
        let (node, diags) = parse(&src, &|_| None);
        assert!(node.is_none());
        assert!(diags.0[0].message.contains("16 MiB"), "{diags}");
        assert_eq!(diags.0[0].pos.map(|p| p.line), Some(2));
    }

    #[test]
    fn environment_expansion_is_bounded() {
        let big = "y".repeat(1024 * 1024);
        let src = format!("a: \"{}\"\n", "${BIG}".repeat(40));
        let (node, diags) = parse(&src, &|_| Some(big.clone()));
        assert!(node.is_none());
        assert!(diags.0[0].message.contains("expansion"), "{diags}");
    }

    #[test]
    fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
        for src in [
            "[".repeat(1_000_000),
            "{a: ".repeat(200_000),
            format!("a: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
            (0..200)
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect(),
        ] {
            let (node, diags) = parse(&src, &|_| None);
            assert!(node.is_none());
            assert_eq!(diags.0.len(), 1, "{diags}");
            // Our limit, or the YAML scanner's own for flow collections nested 256 deep.
            let m = &diags.0[0].message;
            assert!(
                m.contains("deeper than 64") || m.contains("recursion limit exceeded"),
                "{diags}"
            );
            assert_eq!(diags.0[0].pos.map(|p| p.line > 0), Some(true));
        }
        // The limit itself is fine: the document map and 63 lists.
        let ok = format!("a: {}1{}\n", "[".repeat(63), "]".repeat(63));
        let (node, diags) = parse(&ok, &|_| None);
        assert!(node.is_some() && diags.0.is_empty(), "{diags}");
        let over = format!("a: {}1{}\n", "[".repeat(64), "]".repeat(64));
        assert!(parse(&over, &|_| None).0.is_none());
    }

    #[test]
    fn an_alias_cannot_nest_past_the_limit() {
        let inner = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let src = format!("a: &a {inner}\nb: {}*a{}\n", "[".repeat(30), "]".repeat(30));
        let (node, diags) = parse(&src, &|_| None);
        assert!(node.is_none());
        assert!(diags.0[0].message.contains("alias nests"), "{diags}");
        assert_eq!(diags.0[0].pos.map(|p| p.line), Some(2));
    }

    #[test]
    fn huge_sources_are_refused_before_parsing() {
        let src = format!("a: {}\n", "x".repeat(MAX_SOURCE_BYTES));
        let (node, diags) = parse(&src, &|_| None);
        assert!(node.is_none());
        assert_eq!(
            diags.to_string(),
            "error: the config is larger than 4 MiB; a config is a few kilobytes; check that `--config` names the right file\n"
        );
    }

    #[test]
    fn many_plain_values_hit_the_value_budget() {
        let src = format!("a: [{}]\n", vec!["1"; MAX_NODES + 1].join(","));
        let (node, diags) = parse(&src, &|_| None);
        assert!(node.is_none());
        assert!(
            diags.0[0].message.contains("more than 200000 values"),
            "{diags}"
        );
    }

    #[test]
    fn debug_shows_no_scalar() {
        let (node, _) = parse("a: ${S}\nb: [1, true, 2.5, sentinel-plain]\n", &|_| {
            Some("sentinel-env".into())
        });
        let shown = format!("{node:?}");
        for s in ["sentinel", "2.5", "true"] {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(shown.contains("Str(<12 bytes>)"), "{shown}");
    }
}
