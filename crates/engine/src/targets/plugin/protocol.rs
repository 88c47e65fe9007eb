//! Protocol v1's messages and framing (`docs/targets/plugin.md` is the reference): one JSON
//! object per line each way; a request `{"id": n, "op": …, …}`, its answer `{"id": n, "ok": {…}}`
//! or `{"id": n, "error": {"code": …, "message": …}}`.
//!
//! Answers are parsed into a [`Value`] first and then read field by field with messages of our
//! own: serde's type errors can quote the text they did not expect, which may be a value.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use zeroize::Zeroizing;

/// The protocol version this SecretSync speaks.
pub const PROTOCOL: u64 = 1;
/// Longest line read from a plugin (a `list` page must fit), in bytes.
pub const MAX_LINE: usize = 16 << 20;
/// Capabilities a plugin must announce.
pub const REQUIRED: &[&str] = &["list", "read", "write", "delete"];

/// What a plugin said about itself in its `hello`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hello {
    pub capabilities: Vec<String>,
    pub max_name_bytes: Option<u64>,
    pub max_value_bytes: Option<u64>,
    pub allowed_punctuation: Option<String>,
}

/// One secret as a `list` page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub version: u64,
    pub marks: BTreeMap<String, String>,
}

/// A request's body (without its `id`), ready to send. `value` holds a secret value: the
/// serialized line is wiped after it is written.
pub fn request(op: &str, fields: Value) -> Map<String, Value> {
    let mut m = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("op".into(), Value::String(op.into()));
    m
}

/// The `hello` request.
pub fn hello() -> Map<String, Value> {
    request(
        "hello",
        json!({"protocol": PROTOCOL, "secretsync": env!("CARGO_PKG_VERSION")}),
    )
}

/// The line of request `id`: JSON and a newline, in a buffer wiped on drop.
pub fn encode(id: u64, body: &Map<String, Value>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    out.extend_from_slice(format!("{{\"id\":{id}").as_bytes());
    for (k, v) in body {
        out.push(b',');
        serde_json::to_writer(&mut *out, k).expect("a string serializes");
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("a JSON value serializes");
    }
    out.extend_from_slice(b"}\n");
    out
}

/// What reading one line found.
pub enum Line {
    Line(Zeroizing<Vec<u8>>),
    /// The stream ended (the plugin closed stdout or exited).
    Eof,
    /// Longer than the limit; what was read is dropped (and wiped).
    TooLong,
}

/// Reads one line of at most `max` bytes (without its newline), never holding more than that.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut out = Zeroizing::new(Vec::new());
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            if out.len() + i > max {
                r.consume(i + 1);
                return Ok(Line::TooLong);
            }
            out.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(Line::Line(out));
        }
        let n = buf.len();
        if out.len() + n > max {
            r.consume(n);
            return Ok(Line::TooLong);
        }
        out.extend_from_slice(buf);
        r.consume(n);
    }
}

/// How an answer failed to be one.
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    /// Not a JSON object (the parser's position, never the text).
    NotJson(String),
    /// A JSON object without the shape of an answer.
    Shape(String),
    /// The answer of another request.
    WrongId { expected: u64, got: Option<u64> },
}

/// An answer: `ok` or the plugin's error.
#[derive(Debug)]
pub enum Answer {
    Ok(Map<String, Value>),
    Err { code: String, message: String },
}

/// Longest error message kept from a plugin, in characters.
const MAX_MESSAGE: usize = 500;

/// A plugin's message, made printable: control characters replaced, cut at [`MAX_MESSAGE`].
pub fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_MESSAGE)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// Parses the answer to request `id`.
pub fn parse_answer(line: &[u8], id: u64) -> Result<Answer, Bad> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        Bad::NotJson(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut m) = v else {
        return Err(Bad::NotJson("a JSON line that is not an object".into()));
    };
    let got = m.get("id").and_then(Value::as_u64);
    if got != Some(id) {
        return Err(Bad::WrongId { expected: id, got });
    }
    match (m.remove("ok"), m.remove("error")) {
        (Some(Value::Object(ok)), None) => Ok(Answer::Ok(ok)),
        (None, Some(Value::Object(e))) => {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            Ok(Answer::Err {
                code: clean(code),
                message: clean(message),
            })
        }
        _ => Err(Bad::Shape(
            "an answer holds exactly one of `ok` (an object) and `error` (an object)".into(),
        )),
    }
}

fn shape(msg: impl Into<String>) -> Bad {
    Bad::Shape(msg.into())
}

/// Reads a `hello` answer.
pub fn parse_hello(ok: &Map<String, Value>) -> Result<Hello, Bad> {
    let protocol = ok.get("protocol").and_then(Value::as_u64);
    if protocol != Some(PROTOCOL) {
        return Err(Bad::Shape(match ok.get("protocol") {
            Some(Value::Number(n)) => {
                format!("it speaks protocol version {n}; this SecretSync speaks version {PROTOCOL}")
            }
            _ => format!(
                "its `hello` has no protocol version; this SecretSync speaks version {PROTOCOL}"
            ),
        }));
    }
    let capabilities: Vec<String> = match ok.get("capabilities") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| c.as_str().map(clean))
            .collect::<Option<_>>()
            .ok_or_else(|| shape("`capabilities` holds something else than strings"))?,
        _ => return Err(shape("its `hello` has no `capabilities` list")),
    };
    if let Some(missing) = REQUIRED
        .iter()
        .find(|c| !capabilities.iter().any(|have| have == *c))
    {
        return Err(shape(format!(
            "it does not announce the capability `{missing}` (protocol version {PROTOCOL} needs {})",
            REQUIRED.join(", ")
        )));
    }
    let count = |v: Option<&Value>, key: &str| -> Result<Option<u64>, Bad> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| shape(format!("`{key}` is not a positive integer"))),
            Some(_) => Err(shape(format!("`{key}` is not a positive integer"))),
        }
    };
    let max_value_bytes = count(ok.get("max_value_bytes"), "max_value_bytes")?;
    let (max_name_bytes, allowed_punctuation) = match ok.get("name_rules") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(r)) => {
            let punct = match r.get("allowed_punctuation") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if s.chars().all(|c| c.is_ascii_punctuation() && c != '/') =>
                {
                    Some(s.clone())
                }
                Some(_) => {
                    return Err(shape(
                        "`name_rules.allowed_punctuation` is not a string of ASCII punctuation",
                    ));
                }
            };
            (count(r.get("max_bytes"), "name_rules.max_bytes")?, punct)
        }
        Some(_) => return Err(shape("`name_rules` is not an object")),
    };
    Ok(Hello {
        capabilities,
        max_name_bytes,
        max_value_bytes,
        allowed_punctuation,
    })
}

/// A version as the protocol has it: a non-negative integer.
pub fn version(ok: &Map<String, Value>) -> Result<u64, Bad> {
    ok.get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| shape("the answer has no `version` (a non-negative integer)"))
}

/// Marks: an object of strings.
fn marks(v: Option<&Value>) -> Result<BTreeMap<String, String>, Bad> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect::<Option<_>>()
            .ok_or_else(|| shape("`marks` holds something else than strings")),
        Some(_) => Err(shape("`marks` is not an object")),
    }
}

/// Reads a `list` page: its entries and the cursor of the next page.
pub fn parse_list(ok: &Map<String, Value>) -> Result<(Vec<Entry>, Option<String>), Bad> {
    let Some(Value::Array(items)) = ok.get("secrets") else {
        return Err(shape("a `list` answer has no `secrets` list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(e) = item else {
            return Err(shape("a `secrets` entry is not an object"));
        };
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| shape("a `secrets` entry has no `name`"))?;
        out.push(Entry {
            name: name.to_string(),
            version: version(e)?,
            marks: marks(e.get("marks"))?,
        });
    }
    let next = match ok.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(shape("`next` is not a string")),
    };
    Ok((out, next))
}

/// Reads a `read` answer: the value (an object) and its version. The answer's map is taken
/// apart, not copied.
pub fn parse_read(mut ok: Map<String, Value>) -> Result<(Map<String, Value>, u64), Bad> {
    let v = version(&ok)?;
    match ok.remove("value") {
        Some(Value::Object(m)) => Ok((m, v)),
        _ => Err(shape("a `read` answer's `value` is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_line_with_the_id_first() {
        let line = encode(7, &request("read", json!({"name": "a\nb"})));
        let s = std::str::from_utf8(&line).unwrap();
        assert_eq!(s, "{\"id\":7,\"name\":\"a\\nb\",\"op\":\"read\"}\n");
        assert_eq!(s.matches('\n').count(), 1);
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let data = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxx\nshort\n".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &data[..]);
        assert!(
            matches!(read_line(&mut r, 10).await.unwrap(), Line::Line(l) if &l[..] == b"{\"a\":1}")
        );
        assert!(matches!(
            read_line(&mut r, 10).await.unwrap(),
            Line::TooLong
        ));
        // A too-long line is dropped as it is read; the reader is then anywhere in it.
        let mut rest = Vec::new();
        loop {
            match read_line(&mut r, 100).await.unwrap() {
                Line::Line(l) => rest.push(l.to_vec()),
                Line::Eof => break,
                Line::TooLong => panic!(),
            }
        }
        assert_eq!(rest.last().unwrap(), b"short");
    }

    #[test]
    fn answers_are_checked_without_quoting_them() {
        assert!(matches!(
            parse_answer(b"{\"id\":3,\"ok\":{}}", 3),
            Ok(Answer::Ok(_))
        ));
        let e = parse_answer(b"secret-value-here", 3).unwrap_err();
        assert!(
            matches!(&e, Bad::NotJson(m) if !m.contains("secret")),
            "{e:?}"
        );
        assert_eq!(
            parse_answer(b"{\"id\":2,\"ok\":{}}", 3).unwrap_err(),
            Bad::WrongId {
                expected: 3,
                got: Some(2)
            }
        );
        assert!(matches!(
            parse_answer(b"{\"id\":3,\"ok\":{},\"error\":{}}", 3),
            Err(Bad::Shape(_))
        ));
        let Ok(Answer::Err { code, message }) = parse_answer(
            b"{\"id\":3,\"error\":{\"code\":\"conflict\",\"message\":\"a\\u0007b\"}}",
            3,
        ) else {
            panic!()
        };
        assert_eq!((code.as_str(), message.as_str()), ("conflict", "a b"));
    }

    #[test]
    fn hello_is_checked() {
        let h = |v: Value| parse_hello(v.as_object().unwrap());
        let ok = h(json!({"protocol": 1, "capabilities": ["list", "read", "write", "delete", "x"],
            "name_rules": {"max_bytes": 100, "allowed_punctuation": "_-"}, "max_value_bytes": 4096}))
        .unwrap();
        assert_eq!(
            (
                ok.max_name_bytes,
                ok.max_value_bytes,
                ok.allowed_punctuation.as_deref()
            ),
            (Some(100), Some(4096), Some("_-"))
        );
        let e = h(json!({"protocol": 2, "capabilities": []})).unwrap_err();
        assert!(
            matches!(&e, Bad::Shape(m) if m.contains("version 2") && m.contains("speaks version 1")),
            "{e:?}"
        );
        let e = h(json!({"protocol": 1, "capabilities": ["list", "read", "write"]})).unwrap_err();
        assert!(
            matches!(&e, Bad::Shape(m) if m.contains("`delete`")),
            "{e:?}"
        );
        assert!(h(json!({"protocol": 1, "capabilities": REQUIRED, "max_value_bytes": 0})).is_err());
        assert!(h(json!({"protocol": 1, "capabilities": REQUIRED, "name_rules": {"allowed_punctuation": "/"}})).is_err());
    }

    #[test]
    fn pages_and_reads() {
        let (entries, next) = parse_list(
            json!({"secrets": [{"name": "a", "version": 2, "marks": {"m": "v"}}], "next": "c1"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(entries[0].version, 2);
        assert_eq!(entries[0].marks["m"], "v");
        assert_eq!(next.as_deref(), Some("c1"));
        assert!(
            parse_list(
                json!({"secrets": [{"name": "a", "version": "2"}]})
                    .as_object()
                    .unwrap()
            )
            .is_err()
        );
        let (v, n) = parse_read(
            json!({"value": {"k": 1}, "version": 3})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!((v["k"].as_i64(), n), (Some(1), 3));
        assert!(
            parse_read(
                json!({"value": "s3cret", "version": 3})
                    .as_object()
                    .unwrap()
                    .clone()
            )
            .is_err()
        );
    }
}
