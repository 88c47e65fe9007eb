//! A serde `Deserializer` over a positioned YAML [`Node`] tree that keeps going after a
//! problem: unknown keys and wrong types are recorded as diagnostics (with line, column and
//! the nearest valid key) and deserialization continues with a placeholder, so one run
//! reports every problem. Raw config types use `Option` fields, so a missing key is `None`
//! and the validator, not serde, decides whether it was required.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::diag::{Diagnostic, Diagnostics, Pos, closest};
use crate::yaml::{Node, NodeKind};

const SPANNED: &str = "$__secretsync_spanned";
const ONE_OR_MANY: &str = "$__secretsync_one_or_many";
const SPANNED_FIELDS: &[&str] = &["$__pos_line", "$__pos_col", "$__key", "$__value"];

/// A value with the position and key path it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub pos: Pos,
    pub key: String,
    pub value: T,
}

impl<T> Spanned<T> {
    pub fn new(value: T) -> Self {
        Spanned {
            pos: Pos::default(),
            key: String::new(),
            value,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positioned value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let mut line = 0usize;
                let mut col = 0usize;
                let mut key = String::new();
                let mut value = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "$__pos_line" => line = map.next_value()?,
                        "$__pos_col" => col = map.next_value()?,
                        "$__key" => key = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::custom("missing spanned value"))?;
                Ok(Spanned {
                    pos: Pos { line, col },
                    key,
                    value,
                })
            }
        }
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, V(std::marker::PhantomData))
    }
}

/// One block or a list of blocks (`discovery: {…}` or `discovery: [{…}, {…}]`), as a list.
/// A single block keeps its own key path (`discovery.type`); items of a list are numbered
/// (`discovery[1].type`).
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a block or a list of blocks")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_struct(ONE_OR_MANY, &[], V(std::marker::PhantomData))
    }
}

/// The one element of a single block read as a list: the block itself, at its own path.
struct One<'a, 'c> {
    node: Option<&'a Node>,
    path: String,
    diags: &'c RefCell<Diagnostics>,
}

impl<'a> SeqAccess<'a> for One<'a, '_> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.node.take() {
            None => Ok(None),
            Some(node) => seed
                .deserialize(NodeDe {
                    node,
                    path: self.path.clone(),
                    diags: self.diags,
                })
                .map(Some),
        }
    }
}

/// Error type; only raised for internal misuse, since problems in the input become diagnostics.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The keys a struct `T` accepts (its serde field names), found by asking it to deserialize
/// from a probe that only records them.
pub fn fields_of<'a, T: Deserialize<'a>>() -> &'static [&'static str] {
    struct Probe<'f>(&'f std::cell::Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
            Err(Error("not a struct".into()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, Error> {
            self.0.set(fields);
            Err(Error("probed".into()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let cell = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&cell));
    cell.get()
}

/// Deserializes `T` from `node`, returning it with every problem found on the way.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node) -> (Result<T, Error>, Diagnostics) {
    let diags = RefCell::new(Diagnostics::default());
    let result = T::deserialize(NodeDe {
        node,
        path: String::new(),
        diags: &diags,
    });
    (result, diags.into_inner())
}

struct NodeDe<'a, 'c> {
    node: &'a Node,
    path: String,
    diags: &'c RefCell<Diagnostics>,
}

impl NodeDe<'_, '_> {
    fn mismatch(&self, expected: &str) {
        self.diags.borrow_mut().push(
            Diagnostic::error(
                Some(self.node.pos),
                self.path.clone(),
                format!("expected {expected}, found {}", self.node.kind.describe()),
            )
            .with_help(format!("write {expected} here")),
        );
    }
}

impl NodeDe<'_, '_> {
    fn too_large(&self) {
        self.diags.borrow_mut().push(
            Diagnostic::error(
                Some(self.node.pos),
                self.path.clone(),
                "the number is too large",
            )
            .with_help("write a smaller whole number"),
        );
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

macro_rules! de_unsigned {
    ($name:ident, $visit:ident, $ty:ty) => {
        fn $name<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
            match self.node.kind {
                NodeKind::Int(i) if i >= 0 && <$ty>::try_from(i).is_ok() => {
                    v.$visit(<$ty>::try_from(i).unwrap_or_default())
                }
                // A whole number beyond the type (integers past i64 arrive as floats).
                NodeKind::Int(i) if i >= 0 => {
                    self.too_large();
                    v.$visit(0)
                }
                NodeKind::Float(f) if f >= 1.0 && f.fract() == 0.0 => {
                    self.too_large();
                    v.$visit(0)
                }
                _ => {
                    self.mismatch("a non-negative whole number");
                    v.$visit(0)
                }
            }
        }
    };
}

impl<'a> Deserializer<'a> for NodeDe<'a, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Null => v.visit_unit(),
            NodeKind::Bool(b) => v.visit_bool(*b),
            NodeKind::Int(i) => v.visit_i64(*i),
            NodeKind::Float(f) => v.visit_f64(*f),
            NodeKind::Str(s) => v.visit_str(s),
            NodeKind::Seq(items) => v.visit_seq(Seq {
                items: items.iter().enumerate(),
                path: self.path,
                diags: self.diags,
            }),
            NodeKind::Map(entries) => v.visit_map(Map {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                fields: None,
                pending: None,
                path: self.path,
                diags: self.diags,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Bool(b) => v.visit_bool(b),
            _ => {
                self.mismatch("`true` or `false`");
                v.visit_bool(false)
            }
        }
    }

    de_unsigned!(deserialize_u8, visit_u8, u8);
    de_unsigned!(deserialize_u16, visit_u16, u16);
    de_unsigned!(deserialize_u32, visit_u32, u32);
    de_unsigned!(deserialize_u64, visit_u64, u64);

    fn deserialize_i64<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Int(i) => v.visit_i64(i),
            _ => {
                self.mismatch("a whole number");
                v.visit_i64(0)
            }
        }
    }

    fn deserialize_f64<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Int(i) => v.visit_f64(i as f64),
            NodeKind::Float(f) => v.visit_f64(f),
            _ => {
                self.mismatch("a number");
                v.visit_f64(0.0)
            }
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Str(s) => v.visit_str(s),
            NodeKind::Int(i) => v.visit_string(i.to_string()),
            NodeKind::Float(f) => v.visit_string(f.to_string()),
            NodeKind::Bool(b) => v.visit_string(b.to_string()),
            _ => {
                self.mismatch("a string");
                v.visit_str("")
            }
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_string(v)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_string(self.node.key_str())
    }

    fn deserialize_option<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Seq(items) => v.visit_seq(Seq {
                items: items.iter().enumerate(),
                path: self.path,
                diags: self.diags,
            }),
            _ => {
                self.mismatch("a list");
                v.visit_seq(Seq {
                    items: [].iter().enumerate(),
                    path: self.path,
                    diags: self.diags,
                })
            }
        }
    }

    fn deserialize_map<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Map(entries) => v.visit_map(Map {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                fields: None,
                pending: None,
                path: self.path,
                diags: self.diags,
            }),
            _ => {
                self.mismatch("a map");
                v.visit_map(Map {
                    entries: Vec::new().into_iter(),
                    fields: None,
                    pending: None,
                    path: self.path,
                    diags: self.diags,
                })
            }
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            return v.visit_map(SpannedAccess { de: self, step: 0 });
        }
        if name == ONE_OR_MANY {
            return match &self.node.kind {
                NodeKind::Seq(_) => self.deserialize_seq(v),
                NodeKind::Map(_) => v.visit_seq(One {
                    node: Some(self.node),
                    path: self.path,
                    diags: self.diags,
                }),
                _ => {
                    self.mismatch("a block (a map) or a list of blocks");
                    v.visit_seq(One {
                        node: None,
                        path: self.path,
                        diags: self.diags,
                    })
                }
            };
        }
        match &self.node.kind {
            NodeKind::Map(entries) => {
                // Report duplicate keys: YAML allows them to parse, but the second silently wins.
                let mut seen = std::collections::BTreeSet::new();
                let mut unique = Vec::new();
                for entry in entries {
                    let k = &entry.0;
                    if seen.insert(k.key_str()) {
                        unique.push(entry);
                    } else {
                        self.diags.borrow_mut().push(
                            Diagnostic::error(
                                Some(k.pos),
                                child_path(&self.path, &k.key_str()),
                                format!("key `{}` appears twice", k.key_str()),
                            )
                            .with_help("keep one of them"),
                        );
                    }
                }
                v.visit_map(Map {
                    entries: unique.into_iter(),
                    fields: Some(fields),
                    pending: None,
                    path: self.path,
                    diags: self.diags,
                })
            }
            _ => {
                self.mismatch("a map");
                v.visit_map(Map {
                    entries: Vec::new().into_iter(),
                    fields: Some(fields),
                    pending: None,
                    path: self.path,
                    diags: self.diags,
                })
            }
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            // A map tagged by its `type` key: the variant's settings struct is read from the
            // same map (it lists `type` among its fields), so unknown keys are reported against
            // that variant's keys, with suggestions. An unknown or missing `type` is a
            // diagnostic, and the value becomes the enum's `#[serde(other)]` variant.
            NodeKind::Map(entries) => {
                let known: Vec<&str> = variants
                    .iter()
                    .copied()
                    .filter(|v| !v.starts_with('$'))
                    .collect();
                // `RawTarget` -> "target type", `RawMergeStore` -> "merge store type".
                let what = {
                    let base = name.strip_prefix("Raw").unwrap_or(name);
                    let mut w = String::new();
                    for (i, c) in base.chars().enumerate() {
                        if c.is_uppercase() && i > 0 {
                            w.push(' ');
                        }
                        w.extend(c.to_lowercase());
                    }
                    format!("{w} type")
                };
                let first = known.first().copied().unwrap_or(UNKNOWN_VARIANT);
                let tag = entries.iter().find(|(k, _)| k.key_str() == "type");
                // On an unknown or missing `type`, the closest (or first) kind's keys are still
                // checked, so one run reports every problem; the error keeps the config from
                // loading.
                let tag = match tag {
                    Some((_, n)) => match &n.kind {
                        NodeKind::Str(t) if known.contains(&t.as_str()) => t.clone(),
                        NodeKind::Str(t) => {
                            let near = closest(t, known.iter().copied());
                            let help = match near {
                                Some(c) => format!("did you mean `{c}`?"),
                                None => format!("use one of: {}", known.join(", ")),
                            };
                            self.diags.borrow_mut().push(
                                Diagnostic::error(
                                    Some(n.pos),
                                    child_path(&self.path, "type"),
                                    format!("unknown {what} `{t}`"),
                                )
                                .with_help(help),
                            );
                            near.unwrap_or(first).to_string()
                        }
                        _ => {
                            self.diags.borrow_mut().push(
                                Diagnostic::error(
                                    Some(n.pos),
                                    child_path(&self.path, "type"),
                                    format!("expected a string, found {}", n.kind.describe()),
                                )
                                .with_help(format!("use one of: {}", known.join(", "))),
                            );
                            first.to_string()
                        }
                    },
                    None => {
                        self.diags.borrow_mut().push(
                            Diagnostic::error(
                                Some(self.node.pos),
                                child_path(&self.path, "type"),
                                "missing required key `type`",
                            )
                            .with_help(format!("add `type: …` (one of: {})", known.join(", "))),
                        );
                        first.to_string()
                    }
                };
                v.visit_enum(Tagged { de: self, tag })
            }
            _ => Err(Error(format!(
                "expected a string at {}, found {}",
                self.node.pos,
                self.node.kind.describe()
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        i8 i16 i32 i128 u128 f32 char bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct
    }
}

/// The variant a `type`-tagged enum gets for an unknown or missing `type`: name the enum's
/// catch-all variant `#[serde(other, rename = "$unknown")]`.
pub const UNKNOWN_VARIANT: &str = "$unknown";

/// Enum access for a `type`-tagged map: the variant is the tag, its content the same map.
struct Tagged<'a, 'c> {
    de: NodeDe<'a, 'c>,
    tag: String,
}

impl<'a, 'c> de::EnumAccess<'a> for Tagged<'a, 'c> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let tag: de::value::StrDeserializer<'_, Error> = self.tag.as_str().into_deserializer();
        let v = seed.deserialize(tag)?;
        Ok((v, self))
    }
}

impl<'a> de::VariantAccess<'a> for Tagged<'a, '_> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self.de)
    }
    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, _v: V) -> Result<V::Value, Error> {
        Err(Error(
            "tuple variants are not supported in the config".into(),
        ))
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.de.deserialize_struct("", fields, v)
    }
}

struct Seq<'a, 'c, I: Iterator<Item = (usize, &'a Node)>> {
    items: I,
    path: String,
    diags: &'c RefCell<Diagnostics>,
}

impl<'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'a> for Seq<'a, '_, I> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = format!("{}[{i}]", self.path);
                seed.deserialize(NodeDe {
                    node,
                    path,
                    diags: self.diags,
                })
                .map(Some)
            }
        }
    }
}

struct Map<'a, 'c> {
    entries: std::vec::IntoIter<&'a (Node, Node)>,
    fields: Option<&'static [&'static str]>,
    pending: Option<(&'a Node, String)>,
    path: String,
    diags: &'c RefCell<Diagnostics>,
}

impl<'a> MapAccess<'a> for Map<'a, '_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (k, val) in self.entries.by_ref() {
            let key = k.key_str();
            if let Some(fields) = self.fields
                && !fields.contains(&key.as_str())
            {
                let mut d = Diagnostic::error(
                    Some(k.pos),
                    child_path(&self.path, &key),
                    format!("unknown key `{key}`"),
                );
                d = match closest(&key, fields.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("valid keys here: {}", fields.join(", "))),
                };
                self.diags.borrow_mut().push(d);
                continue;
            }
            let path = child_path(&self.path, &key);
            self.pending = Some((val, path));
            return seed
                .deserialize(NodeDe {
                    node: k,
                    path: self.path.clone(),
                    diags: self.diags,
                })
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (node, path) = self
            .pending
            .take()
            .ok_or_else(|| Error("value requested before key".into()))?;
        seed.deserialize(NodeDe {
            node,
            path,
            diags: self.diags,
        })
    }
}

struct SpannedAccess<'a, 'c> {
    de: NodeDe<'a, 'c>,
    step: usize,
}

impl<'a> MapAccess<'a> for SpannedAccess<'a, '_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match SPANNED_FIELDS.get(self.step) {
            Some(name) => seed.deserialize((*name).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let step = self.step;
        self.step += 1;
        match step {
            0 => seed.deserialize((self.de.node.pos.line as u64).into_deserializer()),
            1 => seed.deserialize((self.de.node.pos.col as u64).into_deserializer()),
            2 => seed.deserialize(self.de.path.clone().into_deserializer()),
            _ => seed.deserialize(NodeDe {
                node: self.de.node,
                path: self.de.path.clone(),
                diags: self.de.diags,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        port: Option<u16>,
        name: Option<Spanned<String>>,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct Outer {
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        free: Option<serde_json::Value>,
    }

    fn check(src: &str) -> (Outer, Vec<String>) {
        let (node, d) = parse(src, &|_| None);
        assert!(d.0.is_empty());
        let node = node.unwrap();
        let (r, diags) = from_node::<Outer>(&node);
        (r.unwrap(), diags.0.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn collects_every_unknown_key_and_type_error() {
        let (out, diags) =
            check("inner:\n  prot: 1\n  port: x\nlist:\n  - nme: a\n  - name: b\nfree: {a: [1]}\n");
        assert_eq!(diags.len(), 3, "{diags:#?}");
        assert!(diags[0].contains("line 2, column 3") && diags[0].contains("did you mean `port`?"));
        assert!(
            diags[1].contains("line 3")
                && diags[1].contains("expected a non-negative whole number")
        );
        assert!(diags[2].contains("list[0].nme") && diags[2].contains("did you mean `name`?"));
        let name = out.list[1].name.as_ref().unwrap();
        assert_eq!(
            (name.pos.line, name.key.as_str(), name.value.as_str()),
            (6, "list[1].name", "b")
        );
        assert_eq!(out.free, Some(serde_json::json!({"a": [1]})));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, diags) = check("inner:\n  port: 1\n  port: 2\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].contains("appears twice"));
    }
}
