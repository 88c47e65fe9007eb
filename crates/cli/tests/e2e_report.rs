//! End to end: after an apply that fails, every output format of the real binary reports what
//! happened — the writes made, the writes rolled back, the failure and what is left changed —
//! not the plan. A write failure is injected by the fault proxy (`secretsync-test-support`)
//! between the binary and moto.
//!
//! Needs the local servers (`scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`); without them the test fails loudly.

mod support_sync;

use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::{Value, json};
use support_sync::{World, single_target, unique};

/// Values that must never appear in any output.
const SENTINELS: [&str; 4] = [
    "sentinel-rpt-a",
    "sentinel-rpt-b",
    "sentinel-rpt-c",
    "sentinel-rpt-zz",
];

/// A proxy in front of `upstream` that answers `400 InvalidRequestException` to Secrets
/// Manager writes (`CreateSecret`, `PutSecretValue`) whose body mentions `marker`, and forwards
/// everything else.
fn failing_proxy(upstream: &str, marker: &str) -> Proxy {
    let proxy = Proxy::start(upstream);
    for write in [
        "secretsmanager.CreateSecret",
        "secretsmanager.PutSecretValue",
    ] {
        proxy.add(
            Rule::amz_target(write)
                .body_contains(marker)
                .then(Action::aws_error(
                    400,
                    "InvalidRequestException",
                    "injected failure",
                )),
        );
    }
    proxy
}

#[track_caller]
fn assert_no_sentinels(what: &str, s: &str) {
    for v in SENTINELS {
        assert!(!s.contains(v), "{what} leaked {v}:\n{s}");
    }
}

/// One target `t` synced from `secret/<id>/base/` already holds `a`; then `b`, `c` and
/// `zz-fail` are added in Vault. Through the proxy, the creation of `zz-fail` (the last write:
/// `concurrency: 1` keeps the order) fails after `b` and `c` were created; the rollback deletes
/// them again. Every format must say: 2 created, 2 rolled back, nothing left changed, failed —
/// although the plan said 3 to add.
#[tokio::test]
async fn a_failed_apply_reports_what_was_written_and_rolled_back_in_every_format() {
    const REGION: &str = "eu-south-1";
    let w = World::from_env().await;
    let id = unique("rpt");
    let prefix = format!("{id}/t/");
    let config = w.config(&single_target(&id, REGION, "    concurrency: 1\n"));
    let sm = w.sm(REGION);
    w.put(
        &format!("{id}/base/a"),
        json!({"password": "sentinel-rpt-a"}),
    )
    .await;
    w.pipeline(&config, &[]).success();
    let before = sm.list(&prefix).await;
    assert_eq!(before.len(), 1, "{before:#?}");
    for (p, v) in [
        ("b", "sentinel-rpt-b"),
        ("c", "sentinel-rpt-c"),
        ("zz-fail", "sentinel-rpt-zz"),
    ] {
        w.put(&format!("{id}/base/{p}"), json!({"password": v}))
            .await;
    }
    let proxy = failing_proxy(&w.aws_endpoint, "zz-fail");
    let proxy_url = proxy.url();
    let through_proxy = |args: &[&str], env: &[(&str, &str)]| {
        let mut vars = vec![("AWS_ENDPOINT_URL", proxy_url.as_str())];
        vars.extend_from_slice(env);
        w.pipeline_env(&config, args, &vars)
    };
    let state_is_unchanged = || async {
        let after = sm.list(&prefix).await;
        assert_eq!(
            after, before,
            "the rollback leaves the target as it was (b and c removed, a untouched)"
        );
    };

    // JSON: the plan says 3 to add; the result says 2 created, 2 rolled back, none left.
    let run = through_proxy(&["--output", "json"], &[]);
    run.code(1);
    assert_no_sentinels("json", &format!("{}{}", run.stdout, run.stderr));
    let doc = run.json();
    assert_eq!(doc["dry_run"], json!(false));
    assert_eq!(doc["summary"]["added"], json!(3), "{}", run.stdout);
    let t = &doc["targets"][0];
    assert_eq!(t["failed"], json!(true));
    let r = &t["result"];
    assert_eq!(r["status"], json!("rolled_back"), "{}", run.stdout);
    assert_eq!(r["applied"], json!(false));
    assert_eq!(
        (&r["created"], &r["updated"], &r["deleted"]),
        (&json!(2), &json!(0), &json!(0)),
        "{}",
        run.stdout
    );
    assert_eq!(r["rolled_back"], json!(2), "{}", run.stdout);
    assert_eq!(r["rollback_failures"], json!([]));
    assert_eq!(r["left_changed"], json!([]));
    let failure = r["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("injected failure") && failure.contains("zz-fail"),
        "{failure}"
    );
    assert_eq!(r["failure_kind"], "unexpected", "{}", run.stdout);
    assert_eq!(
        doc["applied"],
        json!({"created": 2, "updated": 0, "deleted": 0, "retagged": 0, "rolled_back": 2, "rollback_failures": 0, "left_changed": 0})
    );
    assert_eq!(doc["statuses"], json!({"rolled_back": 1}));
    state_is_unchanged().await;

    // Text: the result line and the totals, not "3 added".
    let run = through_proxy(&["--output", "text"], &[]);
    run.code(1);
    assert_no_sentinels("text", &format!("{}{}", run.stdout, run.stderr));
    assert!(
        run.line("Result for t:").starts_with(
            "Result for t: ROLLED BACK after a failure: created 2, updated 0, deleted 0, retagged 0, then rolled back 2; nothing left changed"
        ),
        "{}",
        run.stdout
    );
    // The kind first: an InvalidRequestException is nothing the tool knows how to fix.
    assert!(
        run.line("failure (unexpected):")
            .contains("injected failure"),
        "{}",
        run.stdout
    );
    assert!(
        run.line("Applied total:").starts_with(
            "Applied total: created 2, updated 0, deleted 0, retagged 0; rolled back 2, 0 could not be; targets: 1 rolled back"
        ),
        "{}",
        run.stdout
    );
    state_is_unchanged().await;

    // Compact.
    let run = through_proxy(&["--output", "compact"], &[]);
    run.code(1);
    assert!(
        run.line("t: ROLLED_BACK:")
            .starts_with("t: ROLLED_BACK: +2 ~0 -0 UNDONE:2 ("),
        "{}",
        run.stdout
    );
    assert!(
        run.line("TOTAL:")
            .ends_with("APPLIED: +2 ~0 -0 UNDONE:2 FAILED:1"),
        "{}",
        run.stdout
    );
    state_is_unchanged().await;

    // GitHub: the annotation, the outputs (nothing in effect), the step summary.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let (gh_out, gh_sum) = (dir.join("output"), dir.join("summary"));
    let run = through_proxy(
        &["--output", "github"],
        &[
            ("GITHUB_OUTPUT", gh_out.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", gh_sum.to_str().unwrap()),
        ],
    );
    run.code(1);
    assert_no_sentinels("github", &format!("{}{}", run.stdout, run.stderr));
    let annotation = run.line("::error title=target rolled back::t: ");
    assert!(
        annotation.contains("injected failure")
            && annotation.contains(
                "created 2, updated 0, deleted 0, retagged 0 were written and 2 rolled back; nothing left changed"
            ),
        "{annotation}"
    );
    let outputs = std::fs::read_to_string(&gh_out).unwrap();
    for line in [
        "changes=0",
        "added=0",
        "zero_sum=true",
        "planned_changes=3",
        "rolled_back=2",
        "left_changed=[]",
        r#"failed_targets=["t"]"#,
    ] {
        assert!(
            outputs.lines().any(|l| l == line),
            "missing {line} in {outputs}"
        );
    }
    assert_no_sentinels("outputs", &outputs);
    let summary = std::fs::read_to_string(&gh_sum).unwrap();
    assert!(
        summary.contains("| t | rolled back | 2 | 0 | 0 | 0 | 2 | +3 ~0 -0 =1 !0 |"),
        "{summary}"
    );
    assert_no_sentinels("summary", &summary);
    state_is_unchanged().await;

    // Without the fault, the same config converges, and the report says applied.
    let run = w.pipeline(&config, &["--output", "json"]);
    let doc = run.success().json();
    let r: &Value = &doc["targets"][0]["result"];
    assert_eq!(r["status"], json!("applied"), "{}", run.stdout);
    assert_eq!(r["created"], json!(3));
    assert_eq!(r["rolled_back"], json!(0));
    assert_eq!(sm.list(&prefix).await.len(), 4);
}

/// A plan refused by `max_deletes` reports zero applied — no deletion — in JSON and text,
/// although the plan lists the deletions.
#[tokio::test]
async fn a_refused_plan_reports_nothing_applied() {
    const REGION: &str = "eu-south-2";
    let w = World::from_env().await;
    let id = unique("rfs");
    let prefix = format!("{id}/t/");
    let config = w.config(&single_target(
        &id,
        REGION,
        "    delete_orphans: true\n    max_deletes: 1\n",
    ));
    for p in ["a", "b", "c"] {
        w.put(&format!("{id}/base/{p}"), json!({"k": p})).await;
    }
    w.pipeline(&config, &[]).success();
    w.remove(&format!("{id}/base/b")).await;
    w.remove(&format!("{id}/base/c")).await;
    w.put(&format!("{id}/base/d"), json!({"k": "d"})).await;

    let run = w.pipeline(&config, &["--output", "json"]);
    let doc = run.code(1).json();
    let t = &doc["targets"][0];
    assert_eq!(t["summary"]["deleted"], json!(2), "{}", run.stdout);
    let r = &t["result"];
    assert_eq!(r["status"], json!("refused"), "{}", run.stdout);
    assert_eq!(
        (&r["created"], &r["deleted"], &r["rolled_back"]),
        (&json!(0), &json!(0), &json!(0)),
        "{}",
        run.stdout
    );
    assert_eq!(r["left_changed"], json!([]));
    assert!(
        r["failure"]
            .as_str()
            .is_some_and(|f| f.contains("max_deletes")),
        "{}",
        run.stdout
    );
    assert_eq!(doc["applied"]["deleted"], json!(0));

    let run = w.pipeline(&config, &[]);
    run.code(1);
    assert!(
        run.line("Result for t:").starts_with(
            "Result for t: REFUSED, nothing written (created 0, updated 0, deleted 0, retagged 0)"
        ),
        "{}",
        run.stdout
    );
    let listed = w.sm(REGION).list(&prefix).await;
    assert_eq!(listed.len(), 3, "nothing created or deleted: {listed:#?}");
    assert!(listed.values().all(|l| !l.deleted));
}
