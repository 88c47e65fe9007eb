//! The audit log's pure half: events, the hash chain that links them, its verification and
//! exports. The engine writes the lines (`secretsync_engine::audit`).
//!
//! Every event is one JSON object on one line (JSON Lines) with `schema`, `seq` (1, 2, …),
//! `type`, `time`, `run_id`, its own fields, `prev` (the previous event's `hash`; 64 zeros for
//! the first) and `hash`: the SHA-256 (hex) of the event's canonical JSON without `hash` —
//! keys sorted, no spaces, exactly as serde_json prints a map. Changing a byte of an event
//! changes its hash; removing, inserting or reordering events breaks `seq` and `prev`.
//!
//! Events never hold a value: names, paths, version ids and keyed fingerprints only.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The events' schema version.
pub const SCHEMA: u64 = 1;
/// `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a chain ends: the last event's `seq` and `hash` (`seq` 0 and [`GENESIS`] when empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// An event before it is chained: its type and fields (`run_id`, `time` and the rest).
#[derive(Debug, Clone, PartialEq)]
pub struct Event(pub Map<String, Value>);

impl Event {
    fn new(kind: &str, run_id: &str, time: &str, fields: Value) -> Event {
        let mut m = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("type".into(), kind.into());
        m.insert("run_id".into(), run_id.into());
        m.insert("time".into(), time.into());
        Event(m)
    }

    /// A run began: who, with which config (its shape fingerprint), on which targets.
    pub fn run_started(
        run_id: &str,
        time: &str,
        actor: &str,
        command: &str,
        config: &str,
        targets: &[String],
        dry_run: bool,
    ) -> Event {
        Event::new(
            "run_started",
            run_id,
            time,
            json!({"actor": actor, "command": command, "config": config, "targets": targets, "dry_run": dry_run}),
        )
    }

    /// One change an apply left in a target: its kind (`created`, `updated`, `deleted`,
    /// `retagged`, `settings`), the version id the target gave it, the keyed fingerprint.
    #[allow(clippy::too_many_arguments)]
    pub fn change(
        run_id: &str,
        time: &str,
        target: &str,
        path: &str,
        name: &str,
        change: &str,
        version: Option<&str>,
        fingerprint: Option<&str>,
    ) -> Event {
        Event::new(
            "change",
            run_id,
            time,
            json!({"target": target, "path": path, "name": name, "change": change, "version": version, "fingerprint": fingerprint}),
        )
    }

    /// `secretsync rotate` wrote a new version of a secret in Vault with these keys
    /// regenerated (their names only).
    pub fn rotation(
        run_id: &str,
        time: &str,
        source: &str,
        path: &str,
        keys: &[String],
        version: Option<u64>,
    ) -> Event {
        Event::new(
            "rotation",
            run_id,
            time,
            json!({"source": source, "path": path, "keys": keys, "change": "rotated", "version": version.map(|v| v.to_string())}),
        )
    }

    /// A run ended: `success` or `failure`, and per target what happened.
    pub fn run_finished(
        run_id: &str,
        time: &str,
        result: &str,
        targets: Vec<Value>,
        error: Option<&str>,
    ) -> Event {
        Event::new(
            "run_finished",
            run_id,
            time,
            json!({"result": result, "targets": targets, "error": error}),
        )
    }
}

/// The hash of an event (its canonical JSON without `hash`).
fn hash_of(m: &Map<String, Value>) -> String {
    let mut m = m.clone();
    m.remove("hash");
    hex::encode(Sha256::digest(Value::Object(m).to_string().as_bytes()))
}

/// Chains `events` after `head`: each gets `schema`, `seq`, `prev` and `hash`. Returns the
/// lines (without newlines) and the new head.
pub fn chain(head: &Head, events: Vec<Event>) -> (Vec<String>, Head) {
    let mut head = head.clone();
    let mut lines = Vec::with_capacity(events.len());
    for Event(mut m) in events {
        m.insert("schema".into(), SCHEMA.into());
        m.insert("seq".into(), (head.seq + 1).into());
        m.insert("prev".into(), head.hash.clone().into());
        let hash = hash_of(&m);
        m.insert("hash".into(), hash.clone().into());
        lines.push(Value::Object(m).to_string());
        head = Head {
            seq: head.seq + 1,
            hash,
        };
    }
    (lines, head)
}

/// The first problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line in the part verified (a file's line; in the store, the line of the run
    /// object, which [`Broken::at`] names).
    pub line: usize,
    /// Where the line is (a file, or a store object).
    pub at: String,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.at, self.line, self.why)
    }
}

/// Checks lines against the chain that ends at `head` so far, advancing `head`. `at` names
/// where the lines are. Empty lines are allowed only at the end (a final newline).
pub fn verify<'a>(
    head: &mut Head,
    at: &str,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<usize, Broken> {
    let mut n = 0;
    let mut blank_at: Option<usize> = None;
    for (i, line) in lines.into_iter().enumerate() {
        let broken = |why: String| Broken {
            line: i + 1,
            at: at.to_string(),
            why,
        };
        if line.trim().is_empty() {
            blank_at.get_or_insert(i + 1);
            continue;
        }
        if let Some(b) = blank_at {
            return Err(Broken {
                line: b,
                at: at.to_string(),
                why: "an empty line inside the log: it was edited".into(),
            });
        }
        let m: Map<String, Value> = serde_json::from_str(line).map_err(|e| {
            broken(format!(
                "not a JSON event ({e}): the line was edited or cut short"
            ))
        })?;
        let seq = m.get("seq").and_then(Value::as_u64);
        let prev = m.get("prev").and_then(Value::as_str);
        let hash = m.get("hash").and_then(Value::as_str);
        let (Some(seq), Some(prev), Some(hash)) = (seq, prev, hash) else {
            return Err(broken("the event has no `seq`, `prev` or `hash`".into()));
        };
        if hash_of(&m) != hash {
            return Err(broken(format!(
                "event {seq} was changed: its content does not match its hash"
            )));
        }
        if seq != head.seq + 1 {
            return Err(broken(if seq > head.seq + 1 {
                format!(
                    "event {seq} follows event {}: event{} {} missing (removed or reordered)",
                    head.seq,
                    if seq - head.seq > 2 { "s" } else { "" },
                    if seq - head.seq > 2 {
                        format!("{} to {} are", head.seq + 1, seq - 1)
                    } else {
                        format!("{} is", head.seq + 1)
                    }
                )
            } else {
                format!(
                    "event {seq} comes after event {}: events were reordered or repeated",
                    head.seq
                )
            }));
        }
        if prev != head.hash {
            return Err(broken(format!(
                "event {seq} does not follow event {}: its `prev` is not that event's hash (an event was replaced)",
                head.seq
            )));
        }
        *head = Head {
            seq,
            hash: hash.to_string(),
        };
        n += 1;
    }
    Ok(n)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "seq", "time", "type", "run_id", "actor", "command", "dry_run", "target", "path", "name",
    "change", "version", "result",
];

/// The header line of a CSV export.
pub fn csv_header() -> String {
    CSV_COLUMNS.join(",")
}

/// An event line in an export format, or `None` when it is older than `since` (RFC 3339, UTC,
/// compared as text: the log writes every time in the same form).
pub fn export_line(line: &str, since: Option<&str>, format: Format) -> Option<String> {
    let m: Map<String, Value> = serde_json::from_str(line).ok()?;
    let time = m.get("time").and_then(Value::as_str).unwrap_or_default();
    if since.is_some_and(|s| time < s) {
        return None;
    }
    Some(match format {
        Format::Jsonl => line.to_string(),
        Format::Csv => CSV_COLUMNS
            .iter()
            .map(|c| {
                let cell = match m.get(*c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                csv_cell(&cell)
            })
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. A cell that
/// starts like a spreadsheet formula is quoted and prefixed with `'`, so opening the export
/// in a spreadsheet runs nothing.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('\'') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The head an existing log ends at, from its last line (which must be a chained event).
pub fn head_of_line(line: &str) -> Option<Head> {
    let m: Map<String, Value> = serde_json::from_str(line).ok()?;
    Some(Head {
        seq: m.get("seq")?.as_u64()?,
        hash: m.get("hash")?.as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> Vec<String> {
        let events: Vec<Event> = (0..n)
            .map(|i| {
                Event::change(
                    "run-1",
                    &format!("2026-12-02T10:00:0{i}Z"),
                    "prod",
                    &format!("app/s{i}"),
                    &format!("prod/app/s{i}"),
                    "created",
                    Some("v1"),
                    Some("fp"),
                )
            })
            .collect();
        chain(&Head::default(), events).0
    }

    fn check(lines: &[String]) -> Result<usize, Broken> {
        verify(
            &mut Head::default(),
            "audit.jsonl",
            lines.iter().map(String::as_str),
        )
    }

    #[test]
    fn a_chain_verifies_and_continues() {
        let lines = log(3);
        assert_eq!(check(&lines), Ok(3));
        let head = head_of_line(&lines[2]).unwrap();
        assert_eq!(head.seq, 3);
        let (more, head2) = chain(
            &head,
            vec![Event::run_finished(
                "run-1",
                "2026-12-02T10:01:00Z",
                "success",
                vec![],
                None,
            )],
        );
        let mut all = lines.clone();
        all.extend(more);
        assert_eq!(check(&all), Ok(4));
        assert_eq!(head2.seq, 4);
    }

    #[test]
    fn an_edit_a_removal_and_a_swap_are_each_found() {
        let lines = log(4);
        // One byte of content.
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("prod/app/s1", "prod/app/s7");
        let e = check(&edited).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.why.contains("event 2 was changed"), "{e}");
        // A removed event.
        let mut removed = lines.clone();
        removed.remove(1);
        let e = check(&removed).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.why.contains("event 2 is missing"), "{e}");
        // Two events swapped.
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let e = check(&swapped).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.why.contains("event 3 follows event 1"), "{e}");
        // An event replaced by one chained elsewhere (same seq, other prev).
        let other = chain(
            &Head {
                seq: 1,
                hash: "ab".repeat(32),
            },
            vec![Event::change(
                "run-x", "t", "prod", "p", "n", "deleted", None, None,
            )],
        )
        .0;
        let mut replaced = lines.clone();
        replaced[1] = other[0].clone();
        let e = check(&replaced).unwrap_err();
        assert!(e.why.contains("its `prev` is not that event's hash"), "{e}");
        // Cut short.
        let mut cut = lines.clone();
        cut[3].truncate(20);
        assert!(check(&cut).unwrap_err().why.contains("not a JSON event"));
    }

    #[test]
    fn exports_filter_by_time_and_quote_csv() {
        let lines = log(3);
        let since = Some("2026-12-02T10:00:01Z");
        let out: Vec<String> = lines
            .iter()
            .filter_map(|l| export_line(l, since, Format::Jsonl))
            .collect();
        assert_eq!(out.len(), 2);
        let csv = export_line(&lines[0], None, Format::Csv).unwrap();
        assert_eq!(
            csv,
            "1,2026-12-02T10:00:00Z,change,run-1,,,,prod,app/s0,prod/app/s0,created,v1,"
        );
        assert_eq!(csv.split(',').count(), CSV_COLUMNS.len());
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=cmd()"), "\"'=cmd()\"");
    }
}
