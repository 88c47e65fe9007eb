//! Every config in `examples/` loads without errors (with made-up values for its variables),
//! so the examples stay true as keys change.

use secretsync_core::config::{TargetBackend, load};

fn example(name: &str) -> String {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn env(k: &str) -> Option<String> {
    match k {
        "OTHER_VAULT_ADDR" => Some("https://vault.other.example.com".into()),
        "OTHER_VAULT_TOKEN" => Some("example-token".into()),
        "DEMO_HOOK_URL" => Some("http://127.0.0.1:9000/services/demo".into()),
        "HOOK_SECRET" => Some("example-hook-secret".into()),
        "DEMO_SSM_KEY" => Some("alias/example".into()),
        "DEMO_GCP_ENDPOINT" => Some("https://127.0.0.1:8443".into()),
        "DEMO_AZURE_VAULT_URL" => Some("https://127.0.0.1:8444".into()),
        "DEMO_CA_CERT" => Some("tests/ca.pem".into()),
        "DEMO_GCP_TOKEN" | "DEMO_AZURE_TOKEN" => Some("example-token".into()),
        "DEMO_RECEIVER_URL" => Some("http://127.0.0.1:9000/secrets".into()),
        _ => None,
    }
}

#[test]
fn every_example_loads() {
    let dir = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".yaml") {
            continue;
        }
        let loaded = load(&example(&name), &env);
        assert!(
            !loaded.diagnostics.has_errors(),
            "{name}: {:?}",
            loaded.diagnostics.0
        );
        assert!(loaded.config.is_some(), "{name}");
        seen += 1;
    }
    assert!(seen >= 2, "found {seen} examples in {dir}");
}

#[test]
fn the_multi_target_example_means_what_it_says() {
    let c = load(&example("multi-target.yaml"), &env)
        .config
        .expect("loads");
    let kinds: Vec<&str> = c.targets.iter().map(|t| t.backend.type_name()).collect();
    assert_eq!(kinds, ["aws_secretsmanager", "aws_ssm", "vault_kv2"]);
    let TargetBackend::AwsSecretsManager(sm) = &c.targets[0].backend else {
        panic!("the first target is Secrets Manager");
    };
    assert_eq!(sm.replica_regions, ["us-west-2", "eu-west-1"]);
    assert_eq!(c.owner_scope(), "multi-demo");
}

#[test]
fn a_key_of_another_target_kind_names_that_kind() {
    let yaml = "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: v\n    type: vault_kv2\n    address: https://vault.example.com\n    auth: { token: { token: t } }\n    mount: synced/\n    region: us-east-1\n    imports: [base]\n";
    let loaded = load(yaml, &|_| None);
    let d = loaded
        .diagnostics
        .errors()
        .find(|d| d.key == "targets[0].region")
        .expect("`region` is reported");
    assert_eq!(d.pos.map(|p| p.line), Some(9));
    let help = d.help.as_deref().unwrap_or_default();
    assert!(
        help.contains("`aws_secretsmanager`") && help.contains("`aws_ssm`"),
        "{help}"
    );
}
