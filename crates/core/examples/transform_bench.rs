//! The cost of `transform:` on a target's desired state (BENCHMARKS.md, "Transformations"):
//! `core::transform::apply` on N secrets of 8 keys (one nested object), with the blocks of
//! docs/transform.md's example — a `template` building a URL from four keys, an `exclude`, a
//! `rename`, `flatten` and `case: upper` — against a plain copy of the same state (what a
//! target without transforms costs). Pure CPU, no server.
//!
//!     cargo run --release -p secretsync-core --example transform_bench [N] [REPEAT]
//!
//! Prints the median of REPEAT (default 5) runs for each, and µs per secret.

use std::time::{Duration, Instant};

use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::transform::{KeyCase, TransformConfig, apply};
use serde_json::{Map, Value, json};

fn state(n: usize) -> Collected {
    let mut c = Collected::default();
    for i in 0..n {
        let v = json!({
            "user": format!("app{i}"),
            "password": format!("p/w+{i}:secret"),
            "host": format!("db{}.internal", i % 50),
            "port": 5432,
            "db": "app",
            "debug_sql": true,
            "options": {"ssl": true, "pool": {"max": 20, "min": 2}},
            "region": "eu-west-1",
        });
        let Value::Object(m) = v else { unreachable!() };
        c.secrets
            .insert(format!("team{}/app{i}/db", i % 20), SecretValue::new(m));
    }
    c
}

fn blocks() -> Vec<TransformConfig> {
    vec![
        TransformConfig {
            paths: vec!["**/db".into()],
            template: vec![(
                "DATABASE_URL".into(),
                "postgres://{{ user }}:{{ password | percent_encode }}@{{ host }}:{{ port }}/{{ db }}"
                    .into(),
            )],
            ..Default::default()
        },
        TransformConfig {
            exclude: vec!["debug_*".into()],
            rename: vec![("password".into(), "pass".into())],
            flatten: Some("_".into()),
            case: KeyCase::Upper,
            ..Default::default()
        },
    ]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(10_000, |a| a.parse().expect("N: a number"));
    let repeat: usize = args
        .next()
        .map_or(5, |a| a.parse().expect("REPEAT: a number"));
    let desired = state(n);
    let blocks = blocks();
    let mut copy = Vec::new();
    let mut transformed = Vec::new();
    let mut keys = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let c: Map<String, Value> = desired
            .secrets
            .iter()
            .map(|(p, v)| (p.clone(), Value::Object(v.expose().clone())))
            .collect();
        copy.push(t.elapsed());
        std::hint::black_box(c);
        let t = Instant::now();
        let out = apply(&blocks, &desired).expect("the benchmark's transforms apply");
        transformed.push(t.elapsed());
        keys = out.secrets.values().map(|v| v.expose().len()).sum();
    }
    let (c, t) = (median(copy), median(transformed));
    println!("secrets: {n}, runs: {repeat} (medians)");
    println!(
        "plain copy of the state: {:>8.1} ms  ({:.2} µs/secret)",
        c.as_secs_f64() * 1e3,
        c.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "transform::apply:        {:>8.1} ms  ({:.2} µs/secret; {keys} keys out)",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / n as f64
    );
}
