//! Test helpers shared by the target kinds' config tests.

use crate::config::load;

/// Every diagnostic of loading `yaml`, one per line.
pub fn diagnostics(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    load(yaml, env)
        .diagnostics
        .0
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first ```` ```yaml ```` block of a module's `//!` docs (`src`: the module's source), after
/// a Vault source its `imports` can name: a config to load.
pub fn module_example(src: &str) -> String {
    let doc: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```yaml")
        .expect("the module docs have a ```yaml example")
        + 1;
    let end = start
        + doc[start..]
            .iter()
            .position(|l| *l == "```")
            .expect("the example ends");
    format!(
        "vault_sources:\n  - mount: secret/base/\n{}\n",
        doc[start..end].join("\n")
    )
}
