//! Discovery, the pure half: which discovered accounts a block selects (filters, states,
//! allow and deny lists) and the targets its `target_template` makes of them (placeholders,
//! one target per region, names normalised). The engine's `discovery` module asks AWS
//! Organizations and Identity Center for the accounts; nothing here does IO.
//!
//! Placeholders, in the template's `name`, `role_arn`, `external_id`, `secret_prefix`, `imports`
//! and in override values: `{account_id}`, `{account_name}`, `{region}`, `{ou_path}`
//! (`Root/Prod/Web`), `{tag:Key}` (empty when the account has no such tag) and
//! `{permission_set}` (Identity Center: the matched permission sets, joined with `+`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{
    AccountState, AwsSmSettings, DEFAULT_RECOVERY_DAYS, DiscoveryConfig, DiscoveryFilter,
    TargetBackend, TargetConfig,
};

/// One account as discovery saw it. Names, ids, tags and structure only: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_ACTIVATION`, `PENDING_CLOSURE`, `CLOSED` (from the
    /// account's `State`, or its retired `Status`).
    pub state: String,
    /// The OU names from the root down (`Root/Prod/Web`).
    pub ou_path: String,
    /// The ids of the root and of every OU above the account, top down (`r-…`, `ou-…`).
    pub ou_ids: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Identity Center: the permission sets assigned in this account (to the groups asked
    /// for, or to anyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_sets: Vec<String>,
}

/// Whether `value` matches `pattern`, where `*` matches any run of characters (`prod-*`).
pub fn wildcard(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &value[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// How one filter reads in reports (`tag Environment in [prod*]`).
pub fn describe(f: &DiscoveryFilter) -> String {
    match f {
        DiscoveryFilter::Tag { key, values } => format!("tag {key} in [{}]", values.join(", ")),
        DiscoveryFilter::Ou { id, include_nested } => {
            if *include_nested {
                format!("under OU {id}")
            } else {
                format!("directly in OU {id}")
            }
        }
        DiscoveryFilter::PermissionSet { name } => format!("permission set {name}"),
    }
}

fn filter_matches(f: &DiscoveryFilter, a: &Account) -> bool {
    match f {
        DiscoveryFilter::Tag { key, values } => a
            .tags
            .get(key)
            .is_some_and(|v| values.iter().any(|p| wildcard(p, v))),
        DiscoveryFilter::Ou { id, include_nested } => {
            if *include_nested {
                a.ou_ids.iter().any(|o| o == id)
            } else {
                a.ou_ids.last() == Some(id)
            }
        }
        DiscoveryFilter::PermissionSet { name } => {
            a.permission_sets.iter().any(|p| wildcard(name, p))
        }
    }
}

/// Whether `state` (either vocabulary) is one of `wanted`.
fn state_ok(state: &str, wanted: &[AccountState]) -> bool {
    AccountState::parse(state).is_some_and(|s| wanted.contains(&s))
}

/// Whether the block selects `a`, and which filters matched (for reports); `None`: not
/// selected.
pub fn selects(cfg: &DiscoveryConfig, a: &Account) -> Option<Vec<String>> {
    if !state_ok(&a.state, &cfg.states)
        || cfg.exclude_accounts.contains(&a.id)
        || (!cfg.include_accounts.is_empty() && !cfg.include_accounts.contains(&a.id))
    {
        return None;
    }
    let matched: Vec<String> = cfg
        .filters
        .iter()
        .filter(|f| filter_matches(f, a))
        .map(describe)
        .collect();
    let ok = if cfg.filters.is_empty() {
        true
    } else if cfg.match_all {
        matched.len() == cfg.filters.len()
    } else {
        !matched.is_empty()
    };
    ok.then_some(matched)
}

/// What a placeholder stands for.
struct Fill<'a> {
    account: &'a Account,
    region: &'a str,
}

/// Every placeholder a template may use, for messages.
pub const PLACEHOLDERS: &str =
    "{account_id}, {account_name}, {region}, {ou_path}, {tag:Key}, {permission_set}";

/// Replaces the placeholders of `text`; with `fill` `None` only checks them. Errors name the
/// unknown placeholder or the unbalanced brace.
fn fill_text(text: &str, fill: Option<&Fill<'_>>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{text}` has a `{{` without a closing `}}`"))?;
        let name = &after[..close];
        let value = match (name, fill) {
            ("account_id", Some(f)) => f.account.id.clone(),
            ("account_name", Some(f)) => f.account.name.clone(),
            ("region", Some(f)) => f.region.to_string(),
            ("ou_path", Some(f)) => f.account.ou_path.clone(),
            ("permission_set", Some(f)) => f.account.permission_sets.join("+"),
            (n, Some(f)) if n.starts_with("tag:") && n.len() > 4 => {
                f.account.tags.get(&n[4..]).cloned().unwrap_or_default()
            }
            ("account_id" | "account_name" | "region" | "ou_path" | "permission_set", None) => {
                String::new()
            }
            (n, None) if n.starts_with("tag:") && n.len() > 4 => String::new(),
            (n, _) => {
                return Err(format!("`{{{n}}}` in `{text}` is not a placeholder"));
            }
        };
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{text}` has a `}}` without an opening `{{`"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the placeholders of a template text.
pub fn check_text(text: &str) -> Result<(), String> {
    fill_text(text, None).map(|_| ())
}

/// Whether a template text uses a placeholder (`{account_id}`).
pub fn uses(text: &str, placeholder: &str) -> bool {
    text.contains(&format!("{{{placeholder}}}"))
}

fn fill_value(v: &Value, f: &Fill<'_>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(fill_text(s, Some(f))?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| fill_value(i, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), fill_value(v, f)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A target name from a filled template: characters a target name cannot hold become `-`
/// (runs of them one `-`), trimmed of leading and trailing `-` and `.`.
pub fn normalise_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// A discovered target: its config and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    pub target: TargetConfig,
    pub account_id: String,
    pub account_name: String,
    pub region: String,
    /// Which discovery block made it (its index).
    pub block: usize,
}

/// The targets block number `block` (`cfg`) makes of the accounts it selected. An error names
/// what is wrong: a placeholder, or two accounts that would make the same target name.
pub fn expand(
    cfg: &DiscoveryConfig,
    block: usize,
    accounts: &[&Account],
) -> Result<Vec<Discovered>, String> {
    let t = &cfg.template;
    let mut out: Vec<Discovered> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for a in accounts {
        for region in &t.regions {
            let f = Fill { account: a, region };
            let name = normalise_name(&fill_text(&t.name, Some(&f))?);
            if name.is_empty() {
                return Err(format!(
                    "the template name `{}` makes an empty target name for account {}; use `{{account_id}}` in it",
                    t.name, a.id
                ));
            }
            if let Some(other) = seen.insert(name.clone(), format!("{} in {region}", a.id)) {
                return Err(format!(
                    "the template name `{}` makes `{name}` for both account {other} and account {} in {region}; put `{{account_id}}` (and `{{region}}` with several regions) in the name",
                    t.name, a.id
                ));
            }
            let role_arn = fill_text(&t.role_arn, Some(&f))?;
            let external_id = t
                .external_id
                .as_ref()
                .map(|e| fill_text(e, Some(&f)))
                .transpose()?;
            let mut policy = t.policy.clone();
            policy.secret_prefix = fill_text(&t.policy.secret_prefix, Some(&f))?;
            let imports = t
                .imports
                .iter()
                .map(|i| fill_text(i, Some(&f)))
                .collect::<Result<Vec<_>, _>>()?;
            let overrides = match fill_value(&Value::Object(t.overrides.clone()), &f)? {
                Value::Object(m) => m,
                _ => Default::default(),
            };
            out.push(Discovered {
                target: TargetConfig {
                    name,
                    imports,
                    overrides,
                    policy,
                    backend: TargetBackend::AwsSecretsManager(AwsSmSettings {
                        region: region.clone(),
                        role_arn: Some(role_arn),
                        external_id,
                        deletion_recovery_days: DEFAULT_RECOVERY_DAYS,
                        ..Default::default()
                    }),
                    transform: Vec::new(),
                },
                account_id: a.id.clone(),
                account_name: a.name.clone(),
                region: region.clone(),
                block,
            });
        }
    }
    Ok(out)
}

/// Names of earlier discovered targets that are not among `now`: accounts that stopped
/// matching (closed, moved, untagged). Nothing is deleted in them; reports list them.
pub fn no_longer(before: &[String], now: &[Discovered]) -> Vec<String> {
    let now: BTreeSet<&str> = now.iter().map(|d| d.target.name.as_str()).collect();
    before
        .iter()
        .filter(|n| !now.contains(n.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiscoveryKind, TargetPolicy, TargetTemplate};

    fn account(id: &str, name: &str, ou: &[&str], tags: &[(&str, &str)]) -> Account {
        Account {
            id: id.into(),
            name: name.into(),
            state: "ACTIVE".into(),
            ou_path: format!("Root/{}", ou.join("/")),
            ou_ids: std::iter::once("r-root")
                .chain(ou.iter().copied())
                .map(str::to_string)
                .collect(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            permission_sets: vec![],
        }
    }

    fn block(filters: Vec<DiscoveryFilter>, match_all: bool) -> DiscoveryConfig {
        DiscoveryConfig {
            kind: DiscoveryKind::AwsOrganizations,
            filters,
            match_all,
            role_arn: None,
            external_id: None,
            region: None,
            states: vec![AccountState::Active],
            include_accounts: vec![],
            exclude_accounts: vec![],
            permission_sets: vec![],
            groups: vec![],
            cache_ttl: std::time::Duration::from_secs(3600),
            template: TargetTemplate {
                name: "{account_name}-{region}".into(),
                regions: vec!["us-east-1".into(), "eu-west-1".into()],
                role_arn: "arn:aws:iam::{account_id}:role/SecretSync".into(),
                external_id: None,
                imports: vec!["base".into()],
                overrides:
                    serde_json::json!({"account": "{account_id}", "env": "{tag:Environment}"})
                        .as_object()
                        .unwrap()
                        .clone(),
                policy: TargetPolicy {
                    secret_prefix: "app/{account_id}/".into(),
                    ..TargetPolicy::default()
                },
            },
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("prod*", "production"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(wildcard("prod", "prod"));
        assert!(!wildcard("prod", "production"));
        assert!(!wildcard("*-eu", "prod-us"));
        assert!(!wildcard("ab*ba", "aba"), "the two ends may not overlap");
    }

    #[test]
    fn filters_combine_with_all_or_any_and_states_and_lists_apply() {
        let prod = account(
            "111",
            "web",
            &["ou-prod", "ou-web"],
            &[("Environment", "prod-eu")],
        );
        let stag = account("222", "api", &["ou-stag"], &[("Environment", "staging")]);
        let tag = DiscoveryFilter::Tag {
            key: "Environment".into(),
            values: vec!["prod*".into()],
        };
        let ou = DiscoveryFilter::Ou {
            id: "ou-prod".into(),
            include_nested: true,
        };
        let all = block(vec![tag.clone(), ou.clone()], true);
        assert!(selects(&all, &prod).is_some());
        assert!(selects(&all, &stag).is_none());
        let any = block(
            vec![
                DiscoveryFilter::Tag {
                    key: "Environment".into(),
                    values: vec!["staging".into()],
                },
                ou.clone(),
            ],
            false,
        );
        assert_eq!(
            selects(&any, &stag),
            Some(vec!["tag Environment in [staging]".to_string()])
        );
        assert!(selects(&any, &prod).is_some());
        // Nested OUs count unless `include_nested: false`.
        let direct = block(
            vec![DiscoveryFilter::Ou {
                id: "ou-prod".into(),
                include_nested: false,
            }],
            true,
        );
        assert!(selects(&direct, &prod).is_none());
        // States: a suspended account is left out by default, in either vocabulary.
        let mut closed = prod.clone();
        closed.state = "SUSPENDED".into();
        assert!(selects(&all, &closed).is_none());
        let mut with_suspended = all.clone();
        with_suspended.states.push(AccountState::Suspended);
        assert!(selects(&with_suspended, &closed).is_some());
        let mut deny = all.clone();
        deny.exclude_accounts = vec!["111".into()];
        assert!(selects(&deny, &prod).is_none());
        let mut allow = block(vec![], true);
        allow.include_accounts = vec!["222".into()];
        assert!(selects(&allow, &stag).is_some() && selects(&allow, &prod).is_none());
    }

    #[test]
    fn the_template_makes_one_target_per_account_and_region() {
        let prod = account("111", "Web App", &["ou-prod"], &[("Environment", "prod")]);
        let mut cfg = block(vec![], true);
        cfg.template.external_id = Some("ext-{account_id}".into());
        let got = expand(&cfg, 0, &[&prod]).unwrap();
        assert_eq!(
            got.iter()
                .map(|d| d.target.name.as_str())
                .collect::<Vec<_>>(),
            ["Web-App-us-east-1", "Web-App-eu-west-1"]
        );
        let t = &got[0].target;
        assert_eq!(t.policy.secret_prefix, "app/111/");
        assert_eq!(t.overrides["account"], "111");
        assert_eq!(t.overrides["env"], "prod");
        match &t.backend {
            TargetBackend::AwsSecretsManager(s) => {
                assert_eq!(
                    s.role_arn.as_deref(),
                    Some("arn:aws:iam::111:role/SecretSync")
                );
                assert_eq!(s.external_id.as_deref(), Some("ext-111"));
                assert_eq!(s.region, "us-east-1");
                assert_eq!(s.deletion_recovery_days, DEFAULT_RECOVERY_DAYS);
            }
            other => panic!("{other:?}"),
        }
        // Two accounts with the same name: the template must tell them apart.
        let twin = account("222", "Web App", &["ou-prod"], &[]);
        let err = expand(&cfg, 0, &[&prod, &twin]).unwrap_err();
        assert!(
            err.contains("makes `Web-App-us-east-1` for both account 111"),
            "{err}"
        );
    }

    #[test]
    fn placeholders_are_checked() {
        assert!(check_text("{account_name}-{region}-{tag:Team}").is_ok());
        let e = check_text("{account}").unwrap_err();
        assert!(
            e.contains("`{account}` in `{account}` is not a placeholder"),
            "{e}"
        );
        assert!(
            check_text("x-{account_id")
                .unwrap_err()
                .contains("without a closing")
        );
        assert!(check_text("x}").unwrap_err().contains("without an opening"));
        assert_eq!(normalise_name("  My Acct (prod) "), "My-Acct-prod");
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    const YAML: &str = "vault_sources:\n  - mount: secret/base/\n    name: base\ntargets:\n  - name: web-us-east-1\n    type: aws_secretsmanager\n    region: us-east-1\n    imports: [base]\n";

    fn discovered(name: &str, imports: &[&str]) -> Discovered {
        Discovered {
            target: TargetConfig {
                name: name.into(),
                imports: imports.iter().map(|s| s.to_string()).collect(),
                overrides: Default::default(),
                policy: Default::default(),
                backend: TargetBackend::AwsSecretsManager(AwsSmSettings {
                    region: "us-east-1".into(),
                    ..Default::default()
                }),
                transform: Vec::new(),
            },
            account_id: "111111111111".into(),
            account_name: "web".into(),
            region: "us-east-1".into(),
            block: 0,
        }
    }

    /// A discovered target named like a static one is dropped with a warning (the static one
    /// is kept as it was); the others join the graph, importing sources and static targets.
    #[test]
    fn the_static_target_wins_and_the_rest_join_the_graph() {
        let mut c = crate::config::load(YAML, &|_| None)
            .config
            .expect("the config loads");
        let static_before = c.targets[0].clone();
        let diags = c.add_discovered(vec![
            discovered("web-us-east-1", &["base"]),
            discovered("api-us-east-1", &["base", "web-us-east-1"]),
        ]);
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[0], static_before);
        assert!(
            diags.iter().any(|d| d.to_string().contains(
                "discovered target `web-us-east-1` (account 111111111111, us-east-1) has the name of a target of the config"
            )),
            "{diags:?}"
        );
        assert_eq!(c.graph.order, ["web-us-east-1", "api-us-east-1"]);
        // An import nothing provides is an error of the new graph.
        let mut c = crate::config::load(YAML, &|_| None).config.unwrap();
        let diags = c.add_discovered(vec![discovered("x-us-east-1", &["nope"])]);
        assert!(
            diags
                .iter()
                .any(|d| d.severity == crate::diag::Severity::Error),
            "{diags:?}"
        );
    }
}
