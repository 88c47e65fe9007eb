//! The plan graph: targets and what they import, resolved and checked. Targets form a DAG;
//! a cycle is reported with its path spelled out (`a -> b -> a`). Execution order is
//! topological, ties broken by the order targets appear in the config, so it is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::diag::{Diagnostic, Pos, closest};

/// What one import name resolves to, in the documented order of precedence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Import {
    /// Another target's merged result.
    Target(String),
    /// A Vault source.
    Source(String),
    /// A bundle that already exists in the merge store under that name.
    Stored(String),
}

impl Import {
    pub fn name(&self) -> &str {
        match self {
            Import::Target(n) | Import::Source(n) | Import::Stored(n) => n,
        }
    }

    /// `target`, `source` or `stored`.
    pub fn kind(&self) -> &'static str {
        match self {
            Import::Target(_) => "target",
            Import::Source(_) => "source",
            Import::Stored(_) => "stored",
        }
    }
}

/// One target as the graph builder sees it.
#[derive(Debug, Clone)]
pub struct GraphInput {
    pub name: String,
    pub pos: Option<Pos>,
    pub imports: Vec<(String, Option<Pos>)>,
}

/// The checked graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Graph {
    /// Target names in execution order.
    pub order: Vec<String>,
    /// Targets by level: level 0 imports no target, level n imports a target of level n-1.
    pub levels: Vec<Vec<String>>,
    /// Each target's imports, resolved, in their declared order.
    pub imports: BTreeMap<String, Vec<Import>>,
}

impl Graph {
    /// Builds the graph, returning every problem found. `has_store`: unknown names may be
    /// bundles in the merge store, so they are warnings rather than errors.
    pub fn build(
        targets: &[GraphInput],
        sources: &[String],
        has_store: bool,
    ) -> (Graph, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let target_index: BTreeMap<&str, usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let source_set: BTreeSet<&str> = sources.iter().map(String::as_str).collect();
        let mut imports = BTreeMap::new();
        let mut edges: Vec<Vec<(usize, Option<Pos>)>> = vec![Vec::new(); targets.len()];

        for (i, t) in targets.iter().enumerate() {
            let mut resolved = Vec::new();
            let mut seen = BTreeSet::new();
            for (k, (name, pos)) in t.imports.iter().enumerate() {
                let key = format!("targets[{i}].imports[{k}]");
                if !seen.insert(name.as_str()) {
                    diags.push(
                        Diagnostic::warning(
                            *pos,
                            key.clone(),
                            format!("`{name}` is imported twice"),
                        )
                        .with_help("remove the repeated import; it changes nothing"),
                    );
                    continue;
                }
                if name == &t.name {
                    diags.push(
                        Diagnostic::error(*pos, key, format!("target `{name}` imports itself"))
                            .with_help("remove it from its own imports"),
                    );
                    continue;
                }
                if let Some(&j) = target_index.get(name.as_str()) {
                    edges[i].push((j, *pos));
                    resolved.push(Import::Target(name.clone()));
                } else if source_set.contains(name.as_str()) {
                    resolved.push(Import::Source(name.clone()));
                } else if has_store {
                    diags.push(
                        Diagnostic::warning(
                            *pos,
                            key,
                            format!("`{name}` is not a target or a Vault source; it must exist in the merge store"),
                        )
                        .with_help("the run fails if the merge store has no bundle with this name"),
                    );
                    resolved.push(Import::Stored(name.clone()));
                } else {
                    let candidates = targets
                        .iter()
                        .map(|t| t.name.as_str())
                        .chain(sources.iter().map(String::as_str));
                    let mut d = Diagnostic::error(
                        *pos,
                        key,
                        format!("import `{name}` is not a target or a Vault source"),
                    );
                    d = match closest(name, candidates) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(
                            "name a target, a source (its `name:` or the last segment of its `mount:`), or configure a merge store that holds it",
                        ),
                    };
                    diags.push(d);
                }
            }
            imports.insert(t.name.clone(), resolved);
        }

        for cycle in find_cycles(&edges) {
            let names: Vec<&str> = cycle.iter().map(|&i| targets[i].name.as_str()).collect();
            let first = cycle[0];
            let pos = edges[first]
                .iter()
                .find(|(j, _)| *j == cycle[1 % cycle.len()])
                .and_then(|(_, p)| *p)
                .or(targets[first].pos);
            diags.push(
                Diagnostic::error(
                    pos,
                    format!("targets[{first}].imports"),
                    format!("inheritance cycle: {} -> {}", names.join(" -> "), names[0]),
                )
                .with_help("targets must form a tree or DAG; remove one of these imports"),
            );
        }

        let (order, levels) = topo(targets, &edges);
        (
            Graph {
                order,
                levels,
                imports,
            },
            diags,
        )
    }

    /// Targets that `name` depends on, transitively, and itself — in execution order.
    pub fn closure(&self, names: &[String]) -> Vec<String> {
        let mut want: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = names.to_vec();
        while let Some(n) = stack.pop() {
            if want.insert(n.clone())
                && let Some(imps) = self.imports.get(&n)
            {
                for imp in imps {
                    if let Import::Target(t) = imp {
                        stack.push(t.clone());
                    }
                }
            }
        }
        self.order
            .iter()
            .filter(|n| want.contains(*n))
            .cloned()
            .collect()
    }
}

/// Every elementary cycle found by DFS, each rotated to start at its smallest index.
fn find_cycles(edges: &[Vec<(usize, Option<Pos>)>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    fn dfs(
        n: usize,
        edges: &[Vec<(usize, Option<Pos>)>],
        color: &mut [Color],
        stack: &mut Vec<usize>,
        out: &mut BTreeSet<Vec<usize>>,
    ) {
        color[n] = Color::Gray;
        stack.push(n);
        for &(m, _) in &edges[n] {
            match color[m] {
                Color::White => dfs(m, edges, color, stack, out),
                Color::Gray => {
                    let start = stack.iter().position(|&x| x == m).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, v)| **v)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    cycle.rotate_left(min);
                    out.insert(cycle);
                }
                Color::Black => {}
            }
        }
        stack.pop();
        color[n] = Color::Black;
    }
    let mut color = vec![Color::White; edges.len()];
    let mut out = BTreeSet::new();
    for n in 0..edges.len() {
        if color[n] == Color::White {
            dfs(n, edges, &mut color, &mut Vec::new(), &mut out);
        }
    }
    out.into_iter().collect()
}

/// Kahn's algorithm, ties broken by config order. Targets on a cycle are left out.
fn topo(
    targets: &[GraphInput],
    edges: &[Vec<(usize, Option<Pos>)>],
) -> (Vec<String>, Vec<Vec<String>>) {
    let n = targets.len();
    let mut indegree = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for (i, deps) in edges.iter().enumerate() {
        let unique: BTreeSet<usize> = deps.iter().map(|(j, _)| *j).collect();
        indegree[i] = unique.len();
        for j in unique {
            dependents[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut level = vec![0usize; n];
    let mut order = Vec::new();
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            level[d] = level[d].max(level[i] + 1);
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    let mut levels: Vec<Vec<String>> = Vec::new();
    for &i in &order {
        if levels.len() <= level[i] {
            levels.resize(level[i] + 1, Vec::new());
        }
        levels[level[i]].push(targets[i].name.clone());
    }
    (
        order.into_iter().map(|i| targets[i].name.clone()).collect(),
        levels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input(spec: &[(&str, &[&str])]) -> Vec<GraphInput> {
        spec.iter()
            .map(|(n, imps)| GraphInput {
                name: n.to_string(),
                pos: None,
                imports: imps.iter().map(|i| (i.to_string(), None)).collect(),
            })
            .collect()
    }

    fn check(spec: &[(&str, &[&str])], sources: &[&str], store: bool) -> (Graph, Vec<String>) {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let (g, d) = Graph::build(&input(spec), &sources, store);
        (g, d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn order_and_levels() {
        let (g, d) = check(
            &[
                ("c", &["b", "base"]),
                ("a", &["base"]),
                ("b", &["a", "prod"]),
            ],
            &["base", "prod"],
            false,
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(g.order, ["a", "b", "c"]);
        assert_eq!(g.levels, vec![vec!["a"], vec!["b"], vec!["c"]]);
        assert_eq!(
            g.imports["c"],
            [Import::Target("b".into()), Import::Source("base".into())]
        );
        assert_eq!(g.closure(&["b".into()]), ["a", "b"]);
    }

    #[test]
    fn cycles_are_spelled_out() {
        let (_, d) = check(
            &[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["d"])],
            &[],
            false,
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d.iter()
                .any(|m| m.contains("inheritance cycle: a -> b -> c -> a")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|m| m.contains("target `d` imports itself")),
            "{d:?}"
        );
    }

    #[test]
    fn unknown_import_is_error_or_store_warning() {
        let (_, d) = check(&[("a", &["bsae"])], &["base"], false);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].starts_with("error") && d[0].contains("did you mean `base`?"),
            "{d:?}"
        );
        let (g, d) = check(&[("a", &["shared-bundle"])], &["base"], true);
        assert!(d[0].starts_with("warning"), "{d:?}");
        assert_eq!(g.imports["a"], [Import::Stored("shared-bundle".into())]);
    }

    proptest! {
        // Random DAGs (edges only point to earlier-generated nodes, shuffled in config order):
        // the order respects every edge and contains every target.
        #[test]
        fn topological_order_respects_every_edge(
            n in 1usize..12,
            raw_edges in prop::collection::vec((0usize..12, 0usize..12), 0..30),
            perm_seed in any::<u64>(),
        ) {
            let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let mut imports: Vec<Vec<String>> = vec![Vec::new(); n];
            for (a, b) in raw_edges {
                let (a, b) = (a % n, b % n);
                if a > b && !imports[a].contains(&names[b]) { imports[a].push(names[b].clone()); }
            }
            let mut idx: Vec<usize> = (0..n).collect();
            let mut s = perm_seed;
            for i in (1..n).rev() { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); idx.swap(i, (s >> 33) as usize % (i + 1)); }
            let targets: Vec<GraphInput> = idx.iter().map(|&i| GraphInput { name: names[i].clone(), pos: None, imports: imports[i].iter().map(|x| (x.clone(), None)).collect() }).collect();
            let (g, d) = Graph::build(&targets, &[], false);
            prop_assert!(d.is_empty());
            prop_assert_eq!(g.order.len(), n);
            let at: BTreeMap<&str, usize> = g.order.iter().enumerate().map(|(i, x)| (x.as_str(), i)).collect();
            for (i, imps) in imports.iter().enumerate() {
                for dep in imps {
                    prop_assert!(at[dep.as_str()] < at[names[i].as_str()]);
                }
            }
        }
    }
}
