//! Lowers [`RawConfig`] into [`Config`], collecting every problem.

use std::time::Duration;

use serde_json::{Map, Value};

use super::raw::*;
use super::*;
use crate::de::{Spanned, from_node};
use crate::diag::{Diagnostic, Diagnostics, Pos, closest};
use crate::graph::{Graph, GraphInput};

pub(super) fn load(source: &str, env: &dyn Fn(&str) -> Option<String>) -> Loaded {
    let (node, mut diags) = crate::yaml::parse(source, env);
    let Some(node) = node else {
        return Loaded {
            config: None,
            diagnostics: diags,
        };
    };
    let (raw, mut de_diags) = from_node::<RawConfig>(&node);
    // A `${VAR}` that could not be expanded left an empty stand-in: report the variable, not
    // also the stand-in's type or value.
    let mut type_error_pos: Vec<Pos> = diags.0.iter().filter_map(|d| d.pos).collect();
    de_diags
        .0
        .retain(|d| d.pos.is_none_or(|p| !type_error_pos.contains(&p)));
    type_error_pos.extend(de_diags.0.iter().filter_map(|d| d.pos));
    for d in &mut de_diags.0 {
        cross_kind_hint(d);
    }
    diags.0.extend(de_diags.0);
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(Diagnostic::error(None, "", e.to_string()));
            return Loaded {
                config: None,
                diagnostics: diags,
            };
        }
    };
    let mut v = Validator {
        diags: Diagnostics::default(),
        merge_store: None,
    };
    let config = v.config(raw);
    // A value with a type error or an unset variable was replaced by a placeholder; don't
    // report it twice.
    v.diags
        .0
        .retain(|d| d.pos.is_none_or(|p| !type_error_pos.contains(&p)));
    diags.0.extend(v.diags.0);
    diags.sort();
    Loaded {
        config: if diags.has_errors() {
            None
        } else {
            Some(config)
        },
        diagnostics: diags,
    }
}

/// Every target kind's name and keys, for saying which kind an unknown key belongs to.
fn target_kind_keys() -> Vec<(&'static str, &'static [&'static str])> {
    use crate::de::fields_of;
    vec![
        (
            "aws_secretsmanager",
            fields_of::<crate::targets::aws_sm::Raw>(),
        ),
        ("vault_kv2", fields_of::<crate::targets::vault_kv2::Raw>()),
        ("aws_ssm", fields_of::<crate::targets::aws_ssm::Raw>()),
        ("webhook", fields_of::<crate::targets::webhook::Raw>()),
        ("plugin", fields_of::<crate::targets::plugin::Raw>()),
        (
            "azure_keyvault",
            fields_of::<crate::targets::azure_keyvault::Raw>(),
        ),
        (
            "gcp_secretmanager",
            fields_of::<crate::targets::gcp_secretmanager::Raw>(),
        ),
    ]
}

/// An unknown key of a target that no key of its kind is close to, but that another kind
/// has (`region` on a `vault_kv2` target): say so instead of only listing the valid keys.
fn cross_kind_hint(d: &mut Diagnostic) {
    let Some(rest) = d.key.strip_prefix("targets[") else {
        return;
    };
    let Some((_, key)) = rest.split_once("].") else {
        return;
    };
    if key.contains('.') || !d.message.starts_with("unknown key") {
        return;
    }
    if d.help
        .as_deref()
        .is_some_and(|h| h.starts_with("did you mean"))
    {
        return;
    }
    let kinds: Vec<String> = target_kind_keys()
        .into_iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    if !kinds.is_empty() {
        d.help = Some(format!(
            "`{key}` is a key of {} targets, not of this target's `type`: remove it, or change `type`",
            kinds.join(" and ")
        ));
    }
}

/// A kind's raw settings once its common keys are moved out (one per target while loading;
/// the size difference between kinds does not matter).
#[allow(clippy::large_enum_variant)]
enum RawBackend {
    AwsSm(crate::targets::aws_sm::Raw),
    VaultKv2(crate::targets::vault_kv2::Raw),
    AwsSsm(crate::targets::aws_ssm::Raw),
    Webhook(crate::targets::webhook::Raw),
    Plugin(crate::targets::plugin::Raw),
    AzureKeyVault(crate::targets::azure_keyvault::Raw),
    GcpSecretManager(crate::targets::gcp_secretmanager::Raw),
}

pub(crate) struct Validator {
    diags: Diagnostics,
    /// The kind of the config's merge store (`s3`, `vault`), once read: a target kind that
    /// keeps its state there checks for it.
    merge_store: Option<&'static str>,
}

pub(crate) fn at<T>(s: &Spanned<T>) -> Option<Pos> {
    (s.pos.line > 0).then_some(s.pos)
}

impl Validator {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub(crate) fn error<T>(
        &mut self,
        s: &Spanned<T>,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(at(s), s.key.clone(), msg).with_help(help));
    }

    pub(crate) fn missing(&mut self, parent: Option<Pos>, key: &str, what: &str) {
        self.diags.push(
            Diagnostic::error(
                parent,
                key,
                format!(
                    "missing required key `{key}`",
                    key = key.rsplit('.').next().unwrap_or(key)
                ),
            )
            .with_help(format!(
                "add `{}: …` ({what})",
                key.rsplit('.').next().unwrap_or(key)
            )),
        );
    }

    /// A count: at least 1 and at most `max` (a bound that keeps arithmetic and allocations
    /// sane); `default` when absent or invalid.
    pub(crate) fn count<N>(&mut self, s: &Option<Spanned<u64>>, default: N, max: N) -> N
    where
        N: Copy + TryInto<u64> + TryFrom<u64> + std::fmt::Display,
    {
        let Some(v) = s else { return default };
        if v.value == 0 {
            self.error(
                v,
                format!("`{}` must be greater than 0", v.key),
                "use a positive number or remove the key for the default",
            );
            return default;
        }
        if v.value > max.try_into().unwrap_or(u64::MAX) {
            self.error(
                v,
                format!("`{}` must be at most {max}", v.key),
                format!("use a number from 1 to {max}, or remove the key for the default"),
            );
            return default;
        }
        N::try_from(v.value).unwrap_or(default)
    }

    pub(crate) fn duration(&mut self, s: &Option<Spanned<String>>, default: Duration) -> Duration {
        match s {
            None => default,
            Some(v) => match parse_duration(&v.value) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.error(
                        v,
                        "duration must be greater than zero",
                        "write e.g. `30s`, `5m` or `1h`",
                    );
                    default
                }
                Err(e) if e.ends_with("longer than 365 days") => {
                    self.error(v, e, "use at most `365d`");
                    default
                }
                Err(e) => {
                    self.error(
                        v,
                        e,
                        "write a duration such as `500ms`, `30s`, `5m`, `1h` or `1h30m`",
                    );
                    default
                }
            },
        }
    }

    pub(crate) fn region(&mut self, s: &Spanned<String>) {
        if let Err(e) = check_region(&s.value) {
            self.error(s, e, "use an AWS region name such as `us-east-1`");
        }
    }

    pub(crate) fn role_arn(&mut self, s: &Option<Spanned<String>>) -> Option<String> {
        let s = s.as_ref()?;
        if let Err(e) = check_role_arn(&s.value) {
            self.error(
                s,
                e,
                "write it as `arn:aws:iam::<12-digit account id>:role/<name>`",
            );
        }
        Some(s.value.clone())
    }

    fn one_of(&mut self, s: &Spanned<String>, allowed: &[&str], what: &str) -> bool {
        if allowed.contains(&s.value.as_str()) {
            return true;
        }
        let help = match closest(&s.value, allowed.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("use one of: {}", allowed.join(", ")),
        };
        self.error(s, format!("unknown {what} `{}`", s.value), help);
        false
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let owner = raw.owner.map(|o| {
            if let Err(e) = check_owner(&o.value) {
                self.error(
                    &o,
                    e,
                    "use 1 to 64 letters, digits and `_.:/=+@-`, e.g. `team-payments/prod`",
                );
            }
            o.value
        });
        let vault = raw
            .vault
            .map(|v| self.vault(v))
            .unwrap_or_else(|| VaultSettings {
                concurrency: DEFAULT_VAULT_CONCURRENCY,
                ..Default::default()
            });
        self.empty_list(
            &raw.vault_sources,
            "vault_sources",
            "no secret is read from Vault",
            "add a source, e.g. `vault_sources: [{ mount: secret/app/ }]`",
        );
        // A config with only `rotation:` blocks is a rotation job's: it has no targets.
        let rotation_only = raw.rotation.as_ref().is_some_and(|r| !r.value.is_empty());
        if raw.discovery.is_none() && !rotation_only {
            self.empty_list(
                &raw.targets,
                "targets",
                "nothing is written anywhere",
                "add a target with `name`, `type: aws_secretsmanager`, `region` and `imports`, or a `discovery:` block",
            );
        }
        let sources = self.sources(raw.vault_sources);
        let (merge_store, retain_versions) = match raw.merge_store.and_then(|m| self.merge_store(m))
        {
            Some((s, r)) => (Some(s), r),
            None => (None, DEFAULT_RETAIN_VERSIONS),
        };
        self.merge_store = merge_store.as_ref().map(|m| match m {
            MergeStoreConfig::S3 { .. } => "s3",
            MergeStoreConfig::Vault { .. } => "vault",
        });
        let (targets, inputs) = self.targets(raw.targets, &sources);
        let discovery: Vec<DiscoveryConfig> = raw
            .discovery
            .map(|d| d.value.0)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| self.discovery(d))
            .collect();
        let metrics = raw.metrics.map(|m| self.metrics(m)).unwrap_or_default();
        let circuit_breaker = raw
            .circuit_breaker
            .map(|c| self.circuit_breaker(c))
            .unwrap_or_default();
        let retries = match raw.retries {
            None => RetriesConfig::default(),
            Some(r) => {
                let (r, d) = (r.value, RetriesConfig::default());
                RetriesConfig {
                    vault_max_attempts: self.count(
                        &r.vault_max_attempts,
                        d.vault_max_attempts,
                        RetriesConfig::MAX_ATTEMPTS,
                    ),
                    aws_max_attempts: self.count(
                        &r.aws_max_attempts,
                        d.aws_max_attempts,
                        RetriesConfig::MAX_ATTEMPTS,
                    ),
                    gcp_max_attempts: self.count(
                        &r.gcp_max_attempts,
                        d.gcp_max_attempts,
                        RetriesConfig::MAX_ATTEMPTS,
                    ),
                    azure_max_attempts: self.count(
                        &r.azure_max_attempts,
                        d.azure_max_attempts,
                        RetriesConfig::MAX_ATTEMPTS,
                    ),
                }
            }
        };
        let max_parallel_targets = self.count(
            &raw.max_parallel_targets,
            DEFAULT_PARALLEL_TARGETS,
            MAX_PARALLEL_TARGETS,
        );
        let masking = match raw.masking {
            None => MaskingConfig::default(),
            Some(m) => {
                let m = m.value;
                let mut cfg = MaskingConfig {
                    enabled: m.enabled.is_none_or(|e| e.value),
                    ..MaskingConfig::default()
                };
                if let Some(p) = m.patterns {
                    if p.value.is_empty() && cfg.enabled {
                        self.error(
                            &p,
                            "`masking.patterns` is empty",
                            "list at least one pattern, or set `masking.enabled: false` to switch pattern masking off",
                        );
                    }
                    cfg.patterns = p.value.into_iter().map(|s| s.value).collect();
                }
                cfg
            }
        };

        let audit = raw.audit.and_then(|a| self.audit(a, merge_store.is_some()));
        let policies = raw
            .policies
            .map(|p| p.value)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| self.policy(p))
            .collect();

        let rotation = self.rotation(raw.rotation, &sources);
        let notifications = raw
            .notifications
            .map(|n| n.value)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| self.notification(n))
            .collect();
        let source_names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
        let (graph, graph_diags) = Graph::build(&inputs, &source_names, merge_store.is_some());
        self.diags.0.extend(graph_diags);
        Config {
            owner,
            vault,
            sources,
            merge_store,
            targets,
            discovery,
            metrics,
            circuit_breaker,
            retries,
            max_parallel_targets,
            retain_versions,
            masking,
            audit,
            policies,
            rotation,
            notifications,
            graph,
        }
    }

    /// A `notifications:` block: an https URL (http to loopback only), a known format, at
    /// least one known trigger, a non-empty secret. The URL is never repeated in a
    /// diagnostic: a Slack hook's URL is its credential.
    fn notification(&mut self, n: Spanned<RawNotification>) -> Option<NotificationConfig> {
        let pos = at(&n);
        let key = n.key.clone();
        let r = n.value;
        let mut ok = true;
        let url = match r.url {
            None => {
                self.missing(
                    pos,
                    &format!("{key}.url"),
                    "where to POST, e.g. `https://hooks.slack.com/services/…`",
                );
                ok = false;
                None
            }
            Some(u) => {
                if let Err(e) = check_endpoint(&u.value) {
                    let why = if e.contains("plain http") {
                        "the URL uses plain http to a non-loopback host; the notification would cross the network unencrypted"
                    } else if e.contains("no host") {
                        "the URL has no host"
                    } else {
                        "the URL is not an https:// URL"
                    };
                    self.error(
                        &u,
                        why,
                        "use https:// (plain http:// is only accepted for loopback addresses)",
                    );
                    ok = false;
                }
                Some(Sensitive::new(u.value))
            }
        };
        let format = match &r.format {
            None => NotifyFormat::Json,
            Some(f) => {
                let format = match f.value.as_str() {
                    "slack" => NotifyFormat::Slack,
                    _ => NotifyFormat::Json,
                };
                ok &= self.one_of(f, &["json", "slack"], "notification format");
                format
            }
        };
        let mut on = Vec::new();
        match &r.on {
            None => on.push(NotifyTrigger::Failure),
            Some(list) if list.value.is_empty() => {
                self.error(
                    list,
                    "`on` is empty, so the notification is never sent",
                    "list at least one of: failure, changes, drift (or remove `on` for `[failure]`)",
                );
                ok = false;
            }
            Some(list) => {
                for t in &list.value {
                    let trigger = match t.value.as_str() {
                        "failure" => NotifyTrigger::Failure,
                        "changes" => NotifyTrigger::Changes,
                        "drift" => NotifyTrigger::Drift,
                        _ => {
                            ok &= self.one_of(t, &["failure", "changes", "drift"], "trigger");
                            continue;
                        }
                    };
                    on.push(trigger);
                }
            }
        }
        on.sort();
        on.dedup();
        let secret = match r.secret {
            Some(s) if s.value.is_empty() => {
                self.error(
                    &s,
                    "`secret` is empty",
                    "give the HMAC key (e.g. `${HOOK_SECRET}`), or remove `secret` to send unsigned",
                );
                ok = false;
                None
            }
            Some(s) => Some(Sensitive::new(s.value)),
            None => None,
        };
        let timeout = self.duration(&r.timeout, DEFAULT_NOTIFY_TIMEOUT);
        let max_attempts = self.count(&r.max_attempts, DEFAULT_NOTIFY_ATTEMPTS, 10u32);
        Some(NotificationConfig {
            url: url?,
            format,
            on,
            secret,
            timeout,
            max_attempts,
        })
        .filter(|_| ok)
    }

    fn audit(&mut self, a: Spanned<RawAudit>, has_store: bool) -> Option<AuditConfig> {
        let pos = at(&a);
        let r = a.value;
        let file = match &r.file {
            Some(f) if f.value.trim().is_empty() => {
                self.error(
                    f,
                    "`audit.file` is empty",
                    "give the path of the JSON Lines file, e.g. `/var/log/secretsync/audit.jsonl`",
                );
                None
            }
            Some(f) => Some(f.value.clone()),
            None => None,
        };
        let store = r.store.as_ref().is_some_and(|s| s.value);
        if let Some(s) = &r.store
            && s.value
            && !has_store
        {
            self.error(
                s,
                "`audit.store` needs a merge store",
                "configure `merge_store:`, or write the log to a file only (`audit.file`)",
            );
        }
        if file.is_none() && !store && r.file.is_none() {
            self.diags.push(
                Diagnostic::error(pos, "audit", "the `audit` block writes the log nowhere")
                    .with_help("set `file: <path>`, `store: true` (with a merge store), or both"),
            );
            return None;
        }
        Some(AuditConfig { file, store })
    }

    fn policy(&mut self, p: Spanned<RawPolicy>) -> Option<PolicyConfig> {
        let pos = at(&p);
        let key = p.key.clone();
        let r = p.value;
        let path = match &r.path {
            Some(path) if path.value.trim().is_empty() => {
                self.error(
                    path,
                    "`path` is empty",
                    "give a .rego file or a folder of them, e.g. `policies/`",
                );
                None
            }
            Some(path) => Some(path.value.clone()),
            None => {
                self.missing(
                    pos,
                    &format!("{key}.path"),
                    "a .rego file or a folder of them, e.g. `policies/`",
                );
                None
            }
        };
        let effect = r.effect.as_ref().and_then(|e| {
            let effect = match e.value.as_str() {
                "warn" => PolicyEffect::Warn,
                _ => PolicyEffect::Deny,
            };
            self.one_of(e, &["deny", "warn"], "policy effect")
                .then_some(effect)
        });
        let rules = match &r.query {
            Some(q) => {
                if let Err(e) = check_policy_query(&q.value) {
                    self.error(
                        q,
                        e,
                        "write a rule path such as `data.secretsync.deny` (`data.`, the package, the rule)",
                    );
                }
                // Messages of a rule named `warn` warn unless `effect` says otherwise.
                let inferred = if q.value.rsplit('.').next() == Some("warn") {
                    PolicyEffect::Warn
                } else {
                    PolicyEffect::Deny
                };
                vec![PolicyRule {
                    query: q.value.clone(),
                    effect: effect.unwrap_or(inferred),
                    explicit: true,
                }]
            }
            None => {
                if let Some(e) = &r.effect {
                    self.error(
                        e,
                        "`effect` needs a `query`",
                        "without `query` the block evaluates `data.secretsync.deny` (deny) and `data.secretsync.warn` (warn); add `query:` or remove `effect`",
                    );
                }
                [("deny", PolicyEffect::Deny), ("warn", PolicyEffect::Warn)]
                    .into_iter()
                    .map(|(rule, effect)| PolicyRule {
                        query: format!("{DEFAULT_POLICY_PACKAGE}.{rule}"),
                        effect,
                        explicit: false,
                    })
                    .collect()
            }
        };
        Some(PolicyConfig {
            path: path?,
            rules,
            with_values: r.with_values.is_some_and(|w| w.value),
            line: pos.map_or(0, |p| p.line),
        })
    }

    /// `rotation:` blocks: a known source, valid globs, a key, a positive `every`, a
    /// generator of 16 to 1024 characters from a charset of at least 10 distinct printable
    /// ASCII characters. Two blocks rotating the same key of the same glob are refused.
    fn rotation(
        &mut self,
        raw: S<Vec<Spanned<RawRotation>>>,
        sources: &[SourceConfig],
    ) -> Vec<RotationConfig> {
        use crate::rotation::{
            DEFAULT_CHARSET, Generator, Glob, MAX_LENGTH, MIN_LENGTH, parse_charset,
            range_lookalikes,
        };
        let mut out = Vec::new();
        // (source, key, glob) of every block so far, for duplicates.
        let mut seen: Vec<(String, String, String, Option<Pos>)> = Vec::new();
        for block in raw.map(|r| r.value).unwrap_or_default() {
            let pos = at(&block);
            let bkey = block.key.clone();
            let r = block.value;
            let mut ok = true;
            let source = match &r.source {
                None => {
                    self.missing(pos, &format!("{bkey}.source"), "a `vault_sources` name");
                    ok = false;
                    String::new()
                }
                Some(s) => {
                    if !sources.iter().any(|src| src.name == s.value) {
                        let names = sources.iter().map(|src| src.name.as_str());
                        let help = match closest(&s.value, names.clone()) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None if sources.is_empty() => {
                                "add the source to `vault_sources` first".to_string()
                            }
                            None => format!(
                                "use one of the `vault_sources` names: {}",
                                names
                                    .map(|n| format!("`{n}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        };
                        self.error(s, format!("unknown source `{}`", s.value), help);
                        ok = false;
                    }
                    s.value.clone()
                }
            };
            let mut paths = Vec::new();
            match &r.paths {
                None => {
                    self.missing(
                        pos,
                        &format!("{bkey}.paths"),
                        "globs over the secrets' paths below the source's mount, e.g. `[\"app/*/db\"]`",
                    );
                    ok = false;
                }
                Some(p) if p.value.is_empty() => {
                    self.error(
                        p,
                        "`paths` is empty, so the block selects nothing",
                        "list at least one glob, e.g. `[\"app/*/db\"]` (`*` within a segment, `**` across segments)",
                    );
                    ok = false;
                }
                Some(p) => {
                    for g in &p.value {
                        match Glob::parse(&g.value) {
                            Ok(glob) => paths.push((glob, at(g))),
                            Err(e) => {
                                self.error(g, e.message, e.help);
                                ok = false;
                            }
                        }
                    }
                }
            }
            let key = match &r.key {
                None => {
                    self.missing(
                        pos,
                        &format!("{bkey}.key"),
                        "the top-level key of the secret to regenerate, e.g. `password`",
                    );
                    ok = false;
                    String::new()
                }
                Some(k) if k.value.is_empty() => {
                    self.error(
                        k,
                        "`key` is empty",
                        "name the top-level key of the secret to regenerate, e.g. `password`",
                    );
                    ok = false;
                    String::new()
                }
                Some(k) => {
                    if k.value.contains(['.', '/']) {
                        self.diags.push(
                            Diagnostic::warning(
                                at(k),
                                k.key.clone(),
                                format!(
                                    "`{}` is read as one top-level key of that name: nested keys are not supported",
                                    k.value
                                ),
                            )
                            .with_help("name a key at the top of the secret's map"),
                        );
                    }
                    k.value.clone()
                }
            };
            let every = match &r.every {
                None => {
                    self.missing(
                        pos,
                        &format!("{bkey}.every"),
                        "how old a value may get before it is regenerated, e.g. `30d`",
                    );
                    ok = false;
                    Duration::ZERO
                }
                Some(e) => {
                    let before = self.diags.0.len();
                    let d = self.duration(&r.every, Duration::ZERO);
                    if self.diags.0.len() != before {
                        ok = false;
                    } else if d.is_zero() {
                        // `0s`-like values are reported by `duration`; this is a guard.
                        self.error(e, "`every` must be greater than zero", "write e.g. `30d`");
                        ok = false;
                    }
                    d
                }
            };
            let generator = match &r.generator {
                None => {
                    self.missing(
                        pos,
                        &format!("{bkey}.generator"),
                        "how new values are made, e.g. `{ length: 32 }`",
                    );
                    ok = false;
                    None
                }
                Some(g) => {
                    let gpos = at(g);
                    let length = match &g.value.length {
                        None => {
                            self.missing(
                                gpos,
                                &format!("{bkey}.generator.length"),
                                "the number of characters of a new value, e.g. `32`",
                            );
                            None
                        }
                        Some(l) => {
                            let n = usize::try_from(l.value).unwrap_or(usize::MAX);
                            if (MIN_LENGTH..=MAX_LENGTH).contains(&n) {
                                Some(n)
                            } else {
                                self.error(
                                    l,
                                    format!(
                                        "`length` must be from {MIN_LENGTH} to {MAX_LENGTH}, not {}",
                                        l.value
                                    ),
                                    "use e.g. `32`: shorter values are too easy to guess",
                                );
                                None
                            }
                        }
                    };
                    let charset = match &g.value.charset {
                        None => Some(DEFAULT_CHARSET.as_bytes().to_vec()),
                        Some(c) => match parse_charset(&c.value) {
                            Ok(cs) => {
                                let ranges = range_lookalikes(&c.value);
                                if !ranges.is_empty() {
                                    self.diags.push(
                                        Diagnostic::warning(
                                            at(c),
                                            c.key.clone(),
                                            format!(
                                                "`charset` characters are literal: {} {}",
                                                ranges
                                                    .iter()
                                                    .map(|r| format!("`{r}`"))
                                                    .collect::<Vec<_>>()
                                                    .join(", "),
                                                if ranges.len() == 1 {
                                                    "is three characters, not a range"
                                                } else {
                                                    "are three characters each, not ranges"
                                                }
                                            ),
                                        )
                                        .with_help("spell out every character (`ABCDEFGHIJKLMNOPQRSTUVWXYZ`), or remove `charset` for the default (A-Z, a-z and 0-9)"),
                                    );
                                }
                                Some(cs)
                            }
                            Err(e) => {
                                self.error(c, e.message, e.help);
                                None
                            }
                        },
                    };
                    match (length, charset) {
                        (Some(length), Some(charset)) => Some(Generator { length, charset }),
                        _ => {
                            ok = false;
                            None
                        }
                    }
                }
            };
            for (glob, gpos) in &paths {
                if let Some((.., first)) = seen
                    .iter()
                    .find(|(s, k, g, _)| *s == source && *k == key && g == glob.as_str())
                {
                    let first = first
                        .map(|p| format!(" (first at {p})"))
                        .unwrap_or_default();
                    self.diags.push(
                        Diagnostic::error(
                            *gpos,
                            format!("{bkey}.paths"),
                            format!(
                                "`{}` of source `{source}` is already rotated for key `{key}` by another block{first}",
                                glob.as_str()
                            ),
                        )
                        .with_help("keep one block per key and path; merge or remove the other"),
                    );
                    ok = false;
                }
                seen.push((
                    source.clone(),
                    key.clone(),
                    glob.as_str().to_string(),
                    *gpos,
                ));
            }
            if let (true, Some(generator)) = (ok, generator) {
                out.push(RotationConfig {
                    source,
                    paths: paths.into_iter().map(|(g, _)| g).collect(),
                    key,
                    every,
                    generator,
                });
            }
        }
        out
    }

    /// A config without sources or targets loads, but does nothing: say so.
    fn empty_list<T>(
        &mut self,
        list: &Option<Spanned<Vec<T>>>,
        key: &str,
        consequence: &str,
        help: &str,
    ) {
        if list.as_ref().is_some_and(|l| !l.value.is_empty()) {
            return;
        }
        self.diags.push(
            Diagnostic::warning(
                list.as_ref().and_then(at),
                key,
                format!("the config has no `{key}`: {consequence}"),
            )
            .with_help(help),
        );
    }

    fn vault(&mut self, v: Spanned<RawVault>) -> VaultSettings {
        let raw = v.value;
        self.vault_connection(
            "vault",
            raw.address,
            raw.namespace,
            raw.auth,
            raw.ca_cert,
            &raw.concurrency,
        )
    }

    /// What `vault:` and a `vault_kv2` target share: address (https unless loopback),
    /// namespace, auth (exactly one method) and CA bundle. `path` is where the keys are
    /// (`vault`, `targets[2]`), for diagnostics. The credentials are moved, not copied.
    pub(crate) fn vault_connection(
        &mut self,
        path: &str,
        address: S<String>,
        namespace: S<String>,
        auth: S<RawVaultAuth>,
        ca_cert: S<String>,
        concurrency: &S<u64>,
    ) -> VaultSettings {
        if let Some(a) = &address
            && let Err(e) = check_vault_address(&a.value)
        {
            self.error(
                a,
                e,
                "use https:// (plain http:// is only accepted for loopback addresses)",
            );
        }
        let auth = auth.and_then(|a| self.vault_auth(a, path));
        VaultSettings {
            address: address.map(|a| a.value),
            namespace: namespace.map(|n| n.value),
            auth,
            concurrency: self.count(concurrency, DEFAULT_VAULT_CONCURRENCY, MAX_CONCURRENCY),
            ca_cert: ca_cert.map(|c| c.value),
        }
    }

    fn vault_auth(&mut self, a: Spanned<RawVaultAuth>, path: &str) -> Option<VaultAuth> {
        let pos = at(&a);
        let key = a.key.clone();
        let raw = a.value;
        let count = raw.token.is_some() as u8
            + raw.approle.is_some() as u8
            + raw.kubernetes.is_some() as u8;
        if count != 1 {
            self.diags.push(
                Diagnostic::error(
                    pos,
                    key,
                    format!(
                        "`{path}.auth` must hold exactly one of `token`, `approle`, `kubernetes`"
                    ),
                )
                .with_help("keep one auth method"),
            );
            return None;
        }
        if let Some(t) = raw.token {
            return Some(VaultAuth::Token(
                t.value.token.map(|t| Sensitive::new(t.value)),
            ));
        }
        if let Some(ar) = raw.approle {
            let p = at(&ar);
            let r = ar.value;
            let mount = r
                .mount
                .map(|m| m.value.trim_matches('/').to_string())
                .unwrap_or_else(|| "approle".into());
            match (r.role_id, r.secret_id) {
                (Some(role), Some(secret)) => {
                    return Some(VaultAuth::AppRole {
                        role_id: Sensitive::new(role.value),
                        secret_id: Sensitive::new(secret.value),
                        mount,
                    });
                }
                (role, secret) => {
                    if role.is_none() {
                        self.missing(
                            p,
                            &format!("{path}.auth.approle.role_id"),
                            "or set it as `${VAULT_ROLE_ID}`",
                        );
                    }
                    if secret.is_none() {
                        self.missing(
                            p,
                            &format!("{path}.auth.approle.secret_id"),
                            "or set it as `${VAULT_SECRET_ID}`",
                        );
                    }
                    return None;
                }
            }
        }
        let k = raw.kubernetes?;
        let p = at(&k);
        let k = k.value;
        let Some(role) = k.role else {
            self.missing(
                p,
                &format!("{path}.auth.kubernetes.role"),
                "the Vault role bound to this service account",
            );
            return None;
        };
        Some(VaultAuth::Kubernetes {
            role: role.value.clone(),
            jwt_path: k
                .jwt_path
                .map(|j| j.value)
                .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount/token".into()),
            mount: k
                .mount
                .map(|m| m.value.trim_matches('/').to_string())
                .unwrap_or_else(|| "kubernetes".into()),
        })
    }

    /// A KV v2 mount and optional sub-path as written (`secret/base/`), normalized to end in
    /// `/`; `None` (reported) when it is unsafe or empty.
    pub(crate) fn kv_mount(&mut self, mount: &Spanned<String>) -> Option<String> {
        if let Err(e) = check_vault_path(&mount.value) {
            self.error(mount, e, "write the mount as `mount/sub/path/`");
            return None;
        }
        let normalized = format!("{}/", mount.value.trim_matches('/'));
        if normalized == "/" {
            self.error(
                mount,
                "mount is empty",
                "write the KV v2 mount, e.g. `secret/`",
            );
            return None;
        }
        Some(normalized)
    }

    fn sources(&mut self, raw: Option<Spanned<Vec<Spanned<RawSource>>>>) -> Vec<SourceConfig> {
        let mut out: Vec<SourceConfig> = Vec::new();
        let mut names: Vec<(String, Option<Pos>)> = Vec::new();
        for (i, s) in raw
            .map(|r| r.value)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let pos = at(&s);
            let r = s.value;
            let Some(mount) = r.mount else {
                self.missing(
                    pos,
                    &format!("vault_sources[{i}].mount"),
                    "the KV v2 mount and optional sub-path, e.g. `secret/base/`",
                );
                continue;
            };
            let Some(normalized) = self.kv_mount(&mount) else {
                continue;
            };
            let name = match &r.name {
                Some(n) => {
                    if let Err(e) = check_name(&n.value) {
                        self.error(n, e, "use letters, digits, `.`, `_` and `-`");
                    }
                    n.value.clone()
                }
                None => normalized
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                let first = first
                    .map(|p| format!(" (first at {p})"))
                    .unwrap_or_default();
                self.diags.push(
                    Diagnostic::error(
                        pos,
                        format!("vault_sources[{i}]"),
                        format!("duplicate source name `{name}`{first}"),
                    )
                    .with_help("give one of them a distinct `name:`"),
                );
            }
            names.push((name.clone(), pos));
            let max_secrets = self.count(&r.max_secrets, DEFAULT_MAX_SECRETS, MAX_SECRETS_LIMIT);
            let default_threshold = (max_secrets / 100).clamp(1, 1000);
            let threshold = self.count(
                &r.queue_compaction_threshold,
                default_threshold,
                MAX_SECRETS_LIMIT,
            );
            let max_depth = self.count(&r.max_depth, DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT);
            out.push(SourceConfig {
                name,
                mount: normalized,
                max_secrets,
                queue_compaction_threshold: threshold,
                max_depth,
            });
        }
        out
    }

    /// The store, and how many versions its history keeps (`retain_versions`).
    fn merge_store(&mut self, m: Spanned<RawMergeStore>) -> Option<(MergeStoreConfig, u64)> {
        let pos = at(&m);
        let (enabled, raw_prefix, retain) = match &m.value {
            RawMergeStore::S3(r) => (&r.enabled, &r.prefix, &r.retain_versions),
            RawMergeStore::Vault(r) => (&r.enabled, &r.prefix, &r.retain_versions),
            RawMergeStore::Unknown => return None,
        };
        let retain = self.count(retain, DEFAULT_RETAIN_VERSIONS, MAX_RETAIN_VERSIONS);
        let enabled = enabled.as_ref().is_none_or(|e| e.value);
        let prefix = raw_prefix
            .as_ref()
            .map(|p| p.value.trim_matches('/').to_string())
            .unwrap_or_default();
        if let Some(p) = raw_prefix
            && let Err(e) = check_vault_path(&p.value)
        {
            self.error(p, e, "write the prefix as `path/to/prefix/`");
        }
        let prefix = if prefix.is_empty() {
            prefix
        } else {
            format!("{prefix}/")
        };
        let store = match m.value {
            RawMergeStore::S3(r) => {
                let Some(bucket) = r.bucket else {
                    self.missing(
                        pos,
                        "merge_store.bucket",
                        "the S3 bucket that holds merged bundles",
                    );
                    return None;
                };
                if let Err(e) = check_bucket(&bucket.value) {
                    self.error(
                        &bucket,
                        e,
                        "S3 bucket names are 3-63 lowercase letters, digits, `.` and `-`",
                    );
                }
                if let Some(rg) = &r.region {
                    self.region(rg);
                }
                MergeStoreConfig::S3 {
                    bucket: bucket.value.clone(),
                    prefix,
                    region: r.region.map(|r| r.value),
                    kms_key_id: r.kms_key_id.map(|k| k.value),
                }
            }
            RawMergeStore::Vault(r) => {
                let Some(mount) = r.mount else {
                    self.missing(
                        pos,
                        "merge_store.mount",
                        "the Vault KV v2 mount for merged bundles",
                    );
                    return None;
                };
                if let Err(e) = check_vault_path(&mount.value) {
                    self.error(&mount, e, "write the mount as `mount/sub/path/`");
                }
                MergeStoreConfig::Vault {
                    mount: format!("{}/{prefix}", mount.value.trim_matches('/')),
                }
            }
            RawMergeStore::Unknown => return None,
        };
        enabled.then_some((store, retain))
    }

    fn targets(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<RawTarget>>>>,
        sources: &[SourceConfig],
    ) -> (Vec<TargetConfig>, Vec<GraphInput>) {
        let mut out = Vec::new();
        let mut inputs = Vec::new();
        let mut names: Vec<(String, Option<Pos>)> = Vec::new();
        let raw = raw.map(|r| r.value).unwrap_or_default();
        // Each kind's raw settings, its common keys moved out.
        let raw: Vec<(Option<Pos>, RawCommon, Option<RawBackend>)> = raw
            .into_iter()
            .map(|t| {
                let pos = at(&t);
                match t.value {
                    RawTarget::AwsSecretsManager(mut r) => {
                        (pos, r.take_common(), Some(RawBackend::AwsSm(r)))
                    }
                    RawTarget::VaultKv2(mut r) => {
                        (pos, r.take_common(), Some(RawBackend::VaultKv2(r)))
                    }
                    RawTarget::AwsSsm(mut r) => (pos, r.take_common(), Some(RawBackend::AwsSsm(r))),
                    RawTarget::Webhook(mut r) => {
                        // `name` and `type` stay readable for the kind's own diagnostics.
                        let common = r.take_common();
                        r.name = common.name.clone();
                        (pos, common, Some(RawBackend::Webhook(r)))
                    }
                    RawTarget::Plugin(mut r) => (pos, r.take_common(), Some(RawBackend::Plugin(r))),
                    RawTarget::AzureKeyVault(mut r) => {
                        (pos, r.take_common(), Some(RawBackend::AzureKeyVault(r)))
                    }
                    RawTarget::GcpSecretManager(mut r) => {
                        (pos, r.take_common(), Some(RawBackend::GcpSecretManager(r)))
                    }
                    RawTarget::Unknown => (pos, RawCommon::default(), None),
                }
            })
            .collect();
        let all_names: Vec<String> = raw
            .iter()
            .filter_map(|(_, c, _)| c.name.as_ref().map(|n| n.value.clone()))
            .collect();
        for (i, (pos, r, backend)) in raw.into_iter().enumerate() {
            // An unknown or missing `type` was reported where it was read.
            let Some(backend) = backend else { continue };
            let path = format!("targets[{i}]");
            let Some(name) = r.name else {
                self.missing(pos, &format!("{path}.name"), "a unique target name");
                continue;
            };
            if let Err(e) = check_name(&name.value) {
                self.error(&name, e, "use letters, digits, `.`, `_` and `-`");
            }
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name.value) {
                let first = first
                    .map(|p| format!(" (first at {p})"))
                    .unwrap_or_default();
                self.error(
                    &name,
                    format!("duplicate target name `{}`{first}", name.value),
                    "target names must be unique",
                );
            }
            if sources.iter().any(|s| s.name == name.value) {
                self.diags.push(
                    Diagnostic::warning(at(&name), name.key.clone(), format!("target `{}` has the same name as a Vault source; imports of this name mean the target", name.value))
                        .with_help("rename one of them, or give the source a distinct `name:`"),
                );
            }
            names.push((name.value.clone(), at(&name)));
            let imports: Vec<(String, Option<Pos>)> = r
                .imports
                .map(|i| i.value)
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    let p = at(&s);
                    (s.value, p)
                })
                .collect();
            let overrides = self.overrides(&r.overrides);
            let backend = match backend {
                RawBackend::AwsSm(b) => TargetBackend::AwsSecretsManager(
                    crate::targets::aws_sm::lower(self, &b, pos, &path),
                ),
                RawBackend::VaultKv2(b) => {
                    TargetBackend::VaultKv2(crate::targets::vault_kv2::lower(self, b, pos, &path))
                }
                RawBackend::AwsSsm(b) => TargetBackend::AwsSsm(crate::targets::aws_ssm::lower(
                    self,
                    &b,
                    pos,
                    &path,
                    &r.writes_per_second,
                )),
                RawBackend::Webhook(b) => {
                    let store = self.merge_store;
                    TargetBackend::Webhook(crate::targets::webhook::lower(
                        self, b, pos, &path, store, &r.adopt,
                    ))
                }
                RawBackend::Plugin(b) => {
                    TargetBackend::Plugin(crate::targets::plugin::lower(self, b, pos, &path))
                }
                RawBackend::AzureKeyVault(b) => TargetBackend::AzureKeyVault(
                    crate::targets::azure_keyvault::lower(self, b, pos, &path, &r.delete_orphans),
                ),
                RawBackend::GcpSecretManager(b) => TargetBackend::GcpSecretManager(
                    crate::targets::gcp_secretmanager::lower(self, b, pos, &path),
                ),
            };
            let transform = self.transforms(r.transform);
            let secret_prefix = match (&r.name_template, &r.secret_prefix) {
                (Some(t), Some(p)) => {
                    self.error(
                        t,
                        "`name_template` and `secret_prefix` both say where names go",
                        format!(
                            "keep one: `secret_prefix: {}` is `name_template: \"{}{{path}}\"`",
                            p.value, p.value
                        ),
                    );
                    p.value.clone()
                }
                (Some(t), None) => self
                    .name_template(t, &name.value, &backend)
                    .unwrap_or_default(),
                (None, p) => p.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
            };
            if r.secret_prefix.is_none()
                && let Some(t) = &r.name_template
                && let Err(e) = backend.rules().check_prefix(&secret_prefix)
            {
                self.error(
                    t,
                    format!("`{}` gives names starting `{secret_prefix}`: {e}", t.value),
                    "fix the template so that every name it makes is valid in this target",
                );
            }
            if let Some(p) = &r.secret_prefix
                && let Err(e) = backend.rules().check_prefix(&p.value)
            {
                self.error(
                    p,
                    e,
                    "fix the prefix so that every name it starts is valid in this target",
                );
            }
            let max_deletes = self.count(&r.max_deletes, DEFAULT_MAX_DELETES, MAX_DELETES_LIMIT);
            let concurrency =
                self.count(&r.concurrency, DEFAULT_TARGET_CONCURRENCY, MAX_CONCURRENCY);
            let wps = self.count(
                &r.writes_per_second,
                DEFAULT_WRITES_PER_SECOND,
                MAX_WRITES_PER_SECOND,
            );
            let max_delete_fraction = match &r.max_delete_fraction {
                None => DEFAULT_MAX_DELETE_FRACTION,
                Some(f) if f.value.is_finite() && f.value > 0.0 && f.value <= 1.0 => f.value,
                Some(f) => {
                    self.error(
                        f,
                        "`max_delete_fraction` must be greater than 0 and at most 1",
                        "write a fraction such as `0.1` (10% of the managed secrets)",
                    );
                    DEFAULT_MAX_DELETE_FRACTION
                }
            };
            let adopt_from = self.adopt_from(&r.adopt_from, &name.value, &all_names);
            let delete_orphans = r.delete_orphans.as_ref().is_some_and(|d| d.value);
            if let Some(d) = &r.delete_orphans
                && d.value
                && imports.is_empty()
            {
                self.diags.push(
                    Diagnostic::warning(
                        at(d),
                        d.key.clone(),
                        format!(
                            "target `{}` deletes orphans but imports nothing: every secret it manages would be deleted",
                            name.value
                        ),
                    )
                    .with_help("add `imports:`, or set `delete_orphans: false`"),
                );
            }
            inputs.push(GraphInput {
                name: name.value.clone(),
                pos: at(&name),
                imports: imports.clone(),
            });
            out.push(TargetConfig {
                name: name.value.clone(),
                imports: imports.into_iter().map(|(n, _)| n).collect(),
                overrides,
                policy: TargetPolicy {
                    secret_prefix,
                    delete_orphans,
                    max_deletes,
                    max_delete_fraction,
                    adopt: r.adopt.is_some_and(|d| d.value),
                    adopt_from,
                    concurrency,
                    writes_per_second: wps,
                },
                backend,
                transform,
            });
        }
        (out, inputs)
    }

    /// `name_template`: the text around `{path}` rendered from the target, which must end
    /// with `{path}` (names stay `<prefix><path>`, so every name maps back to its path).
    /// Placeholders: `target`, `type`, `region`, `account`, and the target's `tags:` keys.
    fn name_template(
        &mut self,
        t: &Spanned<String>,
        target: &str,
        backend: &TargetBackend,
    ) -> Option<String> {
        let Some(head) = t.value.strip_suffix("{path}") else {
            self.error(
                t,
                format!("`{}` does not end with `{{path}}`", t.value),
                "names are `<rendered template>{path}`: put `{path}` last, e.g. `\"{target}/{path}\"`",
            );
            return None;
        };
        let (account, region, tags) = crate::policy::facts(backend);
        let mut out = String::new();
        let mut rest = head;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                self.error(
                    t,
                    format!("`{}` has a `{{` without `}}`", t.value),
                    "close every placeholder, e.g. `{target}`",
                );
                return None;
            };
            let name = &rest[open + 1..open + close];
            let value = match name {
                "target" => Some(target.to_string()),
                "type" => Some(backend.type_name().to_string()),
                "region" => region.clone(),
                "account" => account.clone(),
                "path" => {
                    self.error(
                        t,
                        format!("`{}` uses `{{path}}` more than once", t.value),
                        "use `{path}` once, at the end",
                    );
                    return None;
                }
                other => tags.get(other).and_then(|v| v.as_str()).map(str::to_string),
            };
            let Some(value) = value else {
                let known = ["target", "type", "region", "account"]
                    .into_iter()
                    .map(str::to_string)
                    .chain(tags.keys().cloned())
                    .collect::<Vec<_>>();
                self.error(
                    t,
                    format!(
                        "`{{{name}}}` in `{}` has no value for target `{target}`",
                        t.value
                    ),
                    format!(
                        "use one of: {} (tags are the target's `tags:` keys)",
                        known
                            .iter()
                            .map(|k| format!("`{{{k}}}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return None;
            };
            out.push_str(&value);
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            self.error(
                t,
                format!("`{}` has a `}}` without `{{`", t.value),
                "remove it, or write a placeholder such as `{target}`",
            );
            return None;
        }
        out.push_str(rest);
        Some(out)
    }

    /// A target's `transform:` blocks (one or a list).
    fn transforms(
        &mut self,
        raw: Option<Spanned<crate::de::OneOrMany<Spanned<RawTransform>>>>,
    ) -> Vec<crate::transform::TransformConfig> {
        use crate::transform::{KeyCase, TransformConfig, check_template};
        let mut out = Vec::new();
        for block in raw.map(|r| r.value.0).unwrap_or_default() {
            let pos = at(&block);
            let bkey = block.key.clone();
            let r = block.value;
            let mut t = TransformConfig::default();
            let mut ok = true;
            let mut globs =
                |v: &mut Self, list: &S<Vec<Spanned<String>>>, what: &str| -> Vec<String> {
                    let mut g = Vec::new();
                    for s in list.iter().flat_map(|l| &l.value) {
                        if s.value.is_empty() {
                            v.error(
                                s,
                                format!("an empty {what} glob"),
                                "remove it, or write a glob such as `debug_*`",
                            );
                            ok = false;
                        } else {
                            g.push(s.value.clone());
                        }
                    }
                    g
                };
            t.paths = globs(self, &r.paths, "path");
            t.include = globs(self, &r.include, "key");
            t.exclude = globs(self, &r.exclude, "key");
            if let Some(p) = r
                .paths
                .iter()
                .flat_map(|l| &l.value)
                .find(|p| p.value.starts_with('/'))
            {
                self.error(
                    p,
                    format!("`{}` starts with `/`", p.value),
                    "paths are relative to the target's secrets, e.g. `app/*`",
                );
                ok = false;
            }
            let renames: Vec<(String, Spanned<String>)> = r
                .rename
                .map(|m| m.value.into_iter().collect())
                .unwrap_or_default();
            for (old, new) in &renames {
                if new.value.is_empty() {
                    self.error(
                        new,
                        format!("`rename` gives `{old}` an empty name"),
                        "write the new key name",
                    );
                    ok = false;
                } else if renames.iter().any(|(o, _)| *o == new.value && o != old) {
                    self.error(
                        new,
                        format!(
                            "`{old}` is renamed to `{}`, which is itself renamed",
                            new.value
                        ),
                        "renames apply at once: give each key its final name",
                    );
                    ok = false;
                } else if renames.iter().any(|(o, n)| n.value == new.value && o < old) {
                    self.error(
                        new,
                        format!("two keys are renamed to `{}`", new.value),
                        "give each key its own name",
                    );
                    ok = false;
                }
            }
            t.rename = renames.into_iter().map(|(o, n)| (o, n.value)).collect();
            for (key, src) in r
                .template
                .map(|m| m.value.into_iter().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if let Err(e) = check_template(&src.value) {
                    self.error(
                        &src,
                        format!("template `{key}` does not parse: {e}"),
                        "fix the Jinja syntax (`{{ key }}` for a key of the secret)",
                    );
                    ok = false;
                }
                t.template.push((key, src.value));
            }
            t.case = match &r.case {
                None => KeyCase::None,
                Some(c) => {
                    ok &= self.one_of(c, &["upper", "lower", "none"], "key case");
                    match c.value.as_str() {
                        "upper" => KeyCase::Upper,
                        "lower" => KeyCase::Lower,
                        _ => KeyCase::None,
                    }
                }
            };
            if let Some(f) = &r.flatten {
                if f.value.is_empty() {
                    self.error(
                        f,
                        "`flatten` has an empty separator",
                        "write the separator nested keys are joined with, e.g. `\"_\"`",
                    );
                    ok = false;
                }
                t.flatten = Some(f.value.clone());
            }
            if t == TransformConfig::default() {
                self.diags.push(
                    Diagnostic::warning(pos, bkey, "the `transform` block changes nothing")
                        .with_help("add `include`, `exclude`, `rename`, `template`, `case` or `flatten`, or remove the block"),
                );
                continue;
            }
            if ok {
                out.push(t);
            }
        }
        out
    }

    /// `adopt_from`: former names of a target, each a valid target name other than its own.
    fn adopt_from(
        &mut self,
        a: &Option<Spanned<Vec<Spanned<String>>>>,
        own: &str,
        targets: &[String],
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for old in a.iter().flat_map(|a| &a.value) {
            if let Err(e) = check_name(&old.value) {
                self.error(
                    old,
                    e,
                    "list former names of this target: letters, digits, `.`, `_` and `-`",
                );
            } else if old.value == own {
                self.error(
                    old,
                    format!("target `{own}` cannot adopt from itself"),
                    "list only names this target had before",
                );
            } else if out.contains(&old.value) {
                self.error(
                    old,
                    format!("`{}` is listed twice in `adopt_from`", old.value),
                    "keep one of them",
                );
            } else {
                if targets.contains(&old.value) {
                    self.diags.push(
                        Diagnostic::warning(
                            at(old),
                            old.key.clone(),
                            format!(
                                "target `{own}` adopts from `{}`, which is also a target in this config; both would manage the same secrets",
                                old.value
                            ),
                        )
                        .with_help("list only names that are no longer in use"),
                    );
                }
                out.push(old.value.clone());
            }
        }
        out
    }

    fn overrides(&mut self, o: &Option<Spanned<Value>>) -> Map<String, Value> {
        match o {
            None => Map::new(),
            Some(s) => match &s.value {
                Value::Object(m) => m.clone(),
                Value::Null => Map::new(),
                _ => {
                    self.error(
                        s,
                        "`overrides` must be a map",
                        "write `overrides: { key: value }`",
                    );
                    Map::new()
                }
            },
        }
    }

    fn discovery(&mut self, d: Spanned<RawDiscovery>) -> Option<DiscoveryConfig> {
        let pos = at(&d);
        let key = d.key.clone();
        let r = d.value;
        let enabled = r.enabled.as_ref().is_none_or(|e| e.value);
        let kind = match &r.kind {
            None => {
                self.missing(
                    pos,
                    &format!("{key}.type"),
                    "`aws_organizations` or `identity_center`",
                );
                None
            }
            Some(k) => self
                .one_of(
                    k,
                    &["aws_organizations", "identity_center"],
                    "discovery type",
                )
                .then_some(match k.value.as_str() {
                    "aws_organizations" => DiscoveryKind::AwsOrganizations,
                    _ => DiscoveryKind::IdentityCenter,
                }),
        };
        let mut filters = Vec::new();
        for f in r.filters.map(|f| f.value).unwrap_or_default() {
            let fp = at(&f);
            let fkey = f.key.clone();
            let fr = f.value;
            let count =
                fr.tag.is_some() as u8 + fr.ou.is_some() as u8 + fr.permission_set.is_some() as u8;
            if count != 1 {
                self.diags.push(
                    Diagnostic::error(
                        fp,
                        fkey,
                        "a filter needs exactly one of `tag`, `ou`, `permission_set`",
                    )
                    .with_help("split it into one filter per condition"),
                );
                continue;
            }
            if let Some(tag) = fr.tag {
                let values: Vec<String> = fr
                    .values
                    .map(|v| v.value.into_iter().map(|s| s.value).collect())
                    .unwrap_or_default();
                if values.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            fp,
                            format!("{fkey}.values"),
                            "a tag filter needs `values`",
                        )
                        .with_help("list the accepted values; `*` matches any run of characters"),
                    );
                }
                filters.push(DiscoveryFilter::Tag {
                    key: tag.value,
                    values,
                });
            } else if let Some(ou) = fr.ou {
                if !(ou.value.starts_with("ou-") || ou.value.starts_with("r-")) {
                    self.error(
                        &ou,
                        format!("`{}` is not an organizational unit id", ou.value),
                        "OU ids look like `ou-abcd-12345678` (or `r-abcd` for the root)",
                    );
                }
                filters.push(DiscoveryFilter::Ou {
                    id: ou.value,
                    include_nested: fr.include_nested.is_none_or(|n| n.value),
                });
            } else if let Some(ps) = fr.permission_set {
                filters.push(DiscoveryFilter::PermissionSet { name: ps.value });
            }
        }
        let match_all = match &r.match_mode {
            None => true,
            Some(m) => match m.value.as_str() {
                "all" | "and" => true,
                "any" | "or" => false,
                _ => {
                    self.one_of(m, &["all", "any"], "match mode");
                    true
                }
            },
        };
        let role_arn = self.role_arn(&r.role_arn);
        if let Some(rg) = &r.region {
            self.region(rg);
        }
        let words = |v: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<Spanned<String>> {
            v.as_ref().map(|l| l.value.clone()).unwrap_or_default()
        };
        let mut states = Vec::new();
        let listed: Vec<Spanned<String>> = words(&r.states)
            .into_iter()
            .chain(words(&r.statuses))
            .collect();
        for st in &listed {
            match AccountState::parse(&st.value) {
                Some(s) => states.push(s),
                None => self.error(
                    st,
                    format!("`{}` is not an account state", st.value),
                    format!("use {}", AccountState::WORDS.join(", ")),
                ),
            }
        }
        if listed.is_empty() {
            states.push(AccountState::Active);
        }
        let ids = |this: &mut Self, v: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<String> {
            let mut out = Vec::new();
            for id in words(v) {
                if id.value.len() != 12 || !id.value.bytes().all(|b| b.is_ascii_digit()) {
                    this.error(
                        &id,
                        format!("`{}` is not an AWS account id", id.value),
                        "account ids are 12 digits; quote them (`\"012345678901\"`) so YAML keeps leading zeros",
                    );
                }
                out.push(id.value);
            }
            out
        };
        let include_accounts = ids(self, &r.include_accounts);
        let exclude_accounts = ids(self, &r.exclude_accounts);
        let permission_sets: Vec<String> = words(&r.permission_sets)
            .into_iter()
            .map(|s| s.value)
            .collect();
        let groups: Vec<String> = words(&r.groups).into_iter().map(|s| s.value).collect();
        let by_filter = filters
            .iter()
            .any(|f| matches!(f, DiscoveryFilter::PermissionSet { .. }));
        if kind == Some(DiscoveryKind::IdentityCenter) && permission_sets.is_empty() && !by_filter {
            self.missing(
                pos,
                &format!("{key}.permission_sets"),
                "the permission sets whose assignments select accounts",
            );
        }
        if kind == Some(DiscoveryKind::AwsOrganizations) {
            for (k, v) in [
                ("permission_sets", &r.permission_sets),
                ("groups", &r.groups),
            ] {
                if let Some(v) = v {
                    self.error(
                        v,
                        format!("`{k}` only applies to `type: identity_center`"),
                        "remove it, or add a block of `type: identity_center`",
                    );
                }
            }
        }
        let default_ttl = match kind {
            Some(DiscoveryKind::IdentityCenter) => Duration::from_secs(1800),
            _ => Duration::from_secs(3600),
        };
        let cache_ttl = match &r.cache_ttl {
            Some(t) if t.value.trim() == "0" || t.value.trim() == "0s" => Duration::ZERO,
            _ => self.duration(&r.cache_ttl, default_ttl),
        };
        let template = self.template(r.target_template, pos, &key, enabled);
        let kind = kind?;
        enabled.then_some(DiscoveryConfig {
            kind,
            filters,
            match_all,
            role_arn,
            external_id: r.external_id.map(|e| e.value),
            region: r.region.map(|r| r.value),
            states,
            include_accounts,
            exclude_accounts,
            permission_sets,
            groups,
            cache_ttl,
            template,
        })
    }

    /// A discovery block's `target_template`: placeholders checked, role ARN and regions
    /// checked as they would be filled, names that would collide rejected.
    fn template(
        &mut self,
        t: Option<Spanned<RawTemplate>>,
        pos: Option<Pos>,
        key: &str,
        enabled: bool,
    ) -> TargetTemplate {
        let tpos = t.as_ref().and_then(at).or(pos);
        let defaulted = t.is_none();
        if defaulted && enabled {
            self.diags.push(
                Diagnostic::warning(
                    pos,
                    format!("{key}.target_template"),
                    "discovery has no `target_template`: each account becomes a target `{account_name}-us-east-1` through `arn:aws:iam::{account_id}:role/SecretSync` that imports nothing",
                )
                .with_help("add `target_template: { regions: [...], imports: [...] }` (docs/discovery.md)"),
            );
        }
        let t = t.map(|t| t.value).unwrap_or_default();
        let text = |this: &mut Self, s: &Option<Spanned<String>>, default: &str| -> String {
            match s {
                Some(v) => {
                    if let Err(e) = crate::discovery::check_text(&v.value) {
                        this.error(v, e, format!("use {}", crate::discovery::PLACEHOLDERS));
                    }
                    v.value.clone()
                }
                None => default.to_string(),
            }
        };
        let name = text(self, &t.name, "{account_name}-{region}");
        let role_arn = text(
            self,
            &t.role_arn,
            "arn:aws:iam::{account_id}:role/SecretSync",
        );
        if let Some(r) = &t.role_arn {
            let filled = r
                .value
                .replace("{account_id}", "123456789012")
                .replace("{region}", "us-east-1");
            if !filled.contains('{')
                && let Err(e) = check_role_arn(&filled)
            {
                self.error(
                    r,
                    e,
                    "write it like `arn:aws:iam::{account_id}:role/SecretSync`",
                );
            }
        }
        let external_id = t
            .external_id
            .as_ref()
            .map(|_| text(self, &t.external_id, ""));
        let secret_prefix = text(self, &t.secret_prefix, "");
        let mut regions: Vec<String> = Vec::new();
        for r in t
            .regions
            .map(|r| r.value)
            .unwrap_or_default()
            .into_iter()
            .chain(t.region)
        {
            self.region(&r);
            if regions.contains(&r.value) {
                self.error(
                    &r,
                    format!("region `{}` is listed twice", r.value),
                    "list each region once",
                );
            }
            regions.push(r.value);
        }
        if regions.is_empty() && defaulted {
            regions.push("us-east-1".into());
        }
        if regions.is_empty() {
            self.missing(
                tpos,
                &format!("{key}.target_template.regions"),
                "the regions each discovered account gets a target in, e.g. `regions: [us-east-1]`",
            );
        }
        let names_account = crate::discovery::uses(&name, "account_id")
            || crate::discovery::uses(&name, "account_name");
        if !names_account {
            self.diags.push(
                Diagnostic::error(
                    tpos,
                    format!("{key}.target_template.name"),
                    format!(
                        "the template name `{name}` makes the same target name for every account"
                    ),
                )
                .with_help("put `{account_id}` (or `{account_name}`) in it"),
            );
        }
        if regions.len() > 1 && !crate::discovery::uses(&name, "region") {
            self.diags.push(
                Diagnostic::error(
                    tpos,
                    format!("{key}.target_template.name"),
                    format!(
                        "the template name `{name}` makes the same target name for each of the {} regions",
                        regions.len()
                    ),
                )
                .with_help("put `{region}` in it"),
            );
        }
        let imports: Vec<String> = t
            .imports
            .map(|i| i.value)
            .unwrap_or_default()
            .into_iter()
            .map(|i| {
                if let Err(e) = crate::discovery::check_text(&i.value) {
                    self.error(&i, e, format!("use {}", crate::discovery::PLACEHOLDERS));
                }
                i.value
            })
            .collect();
        let overrides = self.overrides(&t.overrides);
        check_placeholders_in(self, &t.overrides, &Value::Object(overrides.clone()));
        let max_delete_fraction = match &t.max_delete_fraction {
            None => DEFAULT_MAX_DELETE_FRACTION,
            Some(f) if f.value.is_finite() && f.value > 0.0 && f.value <= 1.0 => f.value,
            Some(f) => {
                self.error(
                    f,
                    "`max_delete_fraction` must be greater than 0 and at most 1",
                    "write a fraction such as `0.1` (10% of the managed secrets)",
                );
                DEFAULT_MAX_DELETE_FRACTION
            }
        };
        let policy = TargetPolicy {
            secret_prefix,
            delete_orphans: t.delete_orphans.as_ref().is_some_and(|d| d.value),
            max_deletes: self.count(&t.max_deletes, DEFAULT_MAX_DELETES, MAX_DELETES_LIMIT),
            max_delete_fraction,
            adopt: t.adopt.as_ref().is_some_and(|a| a.value),
            adopt_from: Vec::new(),
            concurrency: self.count(&t.concurrency, DEFAULT_TARGET_CONCURRENCY, MAX_CONCURRENCY),
            writes_per_second: self.count(
                &t.writes_per_second,
                DEFAULT_WRITES_PER_SECOND,
                MAX_WRITES_PER_SECOND,
            ),
        };
        TargetTemplate {
            name,
            regions,
            role_arn,
            external_id,
            imports,
            overrides,
            policy,
        }
    }

    fn metrics(&mut self, m: Spanned<RawMetrics>) -> MetricsConfig {
        let r = m.value;
        let d = MetricsConfig::default();
        let port = match &r.port {
            Some(p) if p.value == 0 || p.value > 65535 => {
                self.error(
                    p,
                    "port must be between 1 and 65535",
                    "pick a free TCP port, e.g. 9090",
                );
                d.port
            }
            Some(p) => p.value as u16,
            None => d.port,
        };
        let path = match &r.path {
            Some(p) if !p.value.starts_with('/') => {
                self.error(
                    p,
                    "metrics path must start with `/`",
                    "write e.g. `/metrics`",
                );
                d.path
            }
            Some(p) if METRICS_RESERVED_PATHS.contains(&p.value.as_str()) => {
                self.error(
                    p,
                    format!("`{}` is served by the metrics endpoint itself", p.value),
                    "pick another path, e.g. `/metrics`",
                );
                d.path
            }
            Some(p) => p.value.clone(),
            None => d.path,
        };
        let address = match &r.address {
            Some(a) => a.value.parse().unwrap_or_else(|_| {
                self.error(
                    a,
                    format!("`{}` is not an IP address", a.value),
                    "write an IP address to listen on, e.g. `0.0.0.0` (every interface) or `127.0.0.1`",
                );
                d.address
            }),
            None => d.address,
        };
        let push_url = r
            .push_url
            .as_ref()
            .and_then(|u| match check_push_url(&u.value) {
                Ok(()) => Some(u.value.trim_end_matches('/').to_string()),
                Err(e) => {
                    self.error(
                        u,
                        e,
                        "write the Pushgateway's base URL, e.g. `http://pushgateway:9091`",
                    );
                    None
                }
            });
        let requested = r.enabled.is_none_or(|e| e.value);
        MetricsConfig {
            requested,
            serve: requested && (r.port.is_some() || r.push_url.is_none()),
            address,
            port,
            path,
            push_url,
        }
    }

    fn circuit_breaker(&mut self, c: Spanned<RawCircuitBreaker>) -> CircuitBreakerConfig {
        let r = c.value;
        let d = CircuitBreakerConfig::default();
        CircuitBreakerConfig {
            requested: r.enabled.is_none_or(|e| e.value),
            failure_threshold: self.count(&r.failure_threshold, d.failure_threshold, 1_000_000u32),
            timeout: self.duration(&r.timeout, d.timeout),
            max_requests: self.count(&r.max_requests, d.max_requests, 1_000_000u32),
            window: self.duration(&r.window, d.window),
        }
    }
}

/// The longest duration accepted anywhere in the config: far above any real timeout or TTL,
/// and small enough that adding it to a clock reading never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m`, `2d`, up to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration");
    let too_long = || format!("`{s}` is longer than 365 days");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{s}` has a number without a unit"))?;
        if digits == 0 {
            return Err(bad());
        }
        // Only ASCII digits here, so the one way to fail is a number too big for u64.
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "d" => n.checked_mul(86400).map(Duration::from_secs),
            _ => return Err(format!("`{s}` has an unknown unit `{unit}`")),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .filter(|t| *t <= MAX_DURATION)
            .ok_or_else(too_long)?;
    }
    Ok(total)
}

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`.
pub fn check_region(r: &str) -> Result<(), String> {
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!("`{r}` is not an AWS region"))
    }
}

/// IAM role ARNs: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    let bad = || format!("`{arn}` is not an IAM role ARN");
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !["aws", "aws-cn", "aws-us-gov"].contains(&parts[1])
        || parts[2] != "iam"
        || !parts[3].is_empty()
    {
        return Err(bad());
    }
    if parts[4].len() != 12 || !parts[4].chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{arn}` does not have a 12-digit account id"));
    }
    let Some(name) = parts[5].strip_prefix("role/") else {
        return Err(bad());
    };
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if ok { Ok(()) } else { Err(bad()) }
}

/// Vault addresses: https, or http to a loopback host.
pub fn check_vault_address(addr: &str) -> Result<(), String> {
    check_endpoint(addr)
}

/// Checks an endpoint the tool sends secrets or credentials to (Vault, AWS endpoint
/// overrides, webhooks): `https://`, or plain `http://` to a loopback address only. The
/// scheme and `localhost` are matched case-insensitively.
pub fn check_endpoint(addr: &str) -> Result<(), String> {
    let (scheme, rest) = addr
        .split_once("://")
        .ok_or_else(|| format!("`{addr}` is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // The host is what follows any `user@`: `http://127.0.0.1@vault.example.com` goes to
    // `vault.example.com`.
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    // A loopback IP literal, not any name that starts like one (`127.0.0.1.nip.io`).
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "`{addr}` uses plain http to a non-loopback host; secrets would cross the network unencrypted"
        )),
        _ => Err(format!("`{addr}` must start with https://")),
    }
}

/// `owner:`: 1 to 64 characters that AWS accepts in a tag value.
/// A rule path: `data` and at least two more parts (package and rule), each a Rego identifier.
pub fn check_policy_query(q: &str) -> Result<(), String> {
    let mut parts = q.split('.');
    if parts.next() != Some("data") {
        return Err(format!("`{q}` does not start with `data.`"));
    }
    let rest: Vec<&str> = parts.collect();
    if rest.len() < 2 {
        return Err(format!("`{q}` names no rule inside a package"));
    }
    for part in rest {
        let mut chars = part.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("`{part}` in `{q}` is not a Rego identifier"));
        }
    }
    Ok(())
}

fn check_owner(o: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&o.chars().count())
        && o.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/=+@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("`owner` must be 1 to 64 characters from `A-Za-z0-9_.:/=+@-`".into())
    }
}

fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty()
        || n.len() > 128
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!("`{n}` is not a valid name"));
    }
    Ok(())
}

/// Vault paths in config: no `..`, NUL, `//`, or backslash.
fn check_vault_path(p: &str) -> Result<(), String> {
    if p.split('/').any(|s| s == "..")
        || p.contains('\0')
        || p.trim_start_matches('/').contains("//")
        || p.contains('\\')
    {
        return Err(format!(
            "`{}` contains `..`, `//`, NUL or `\\`",
            p.escape_debug()
        ));
    }
    Ok(())
}

fn check_bucket(b: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("`{b}` is not a valid S3 bucket name"))
    }
}

/// Errors for the placeholders of every string in a template's overrides.
fn check_placeholders_in(v: &mut Validator, at_: &Option<Spanned<Value>>, value: &Value) {
    match value {
        Value::String(s) => {
            if let (Err(e), Some(a)) = (crate::discovery::check_text(s), at_) {
                v.error(a, e, format!("use {}", crate::discovery::PLACEHOLDERS));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check_placeholders_in(v, at_, i)),
        Value::Object(m) => m.values().for_each(|i| check_placeholders_in(v, at_, i)),
        _ => {}
    }
}
