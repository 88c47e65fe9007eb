//! The Vault client and source reader behind a fault proxy in front of the real OpenBao: every
//! damaged answer for one folder or one secret is a gap naming that path (never "empty" or
//! "missing"), 5xx answers and resets are retried and then fail naming the path, redirects are
//! followed within the Vault origin only, and a document nested past the parser's limit is a
//! gap, not a crash.
//!
//! Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`. Each test works in its own mount.

mod common;

use common::{Bao, source, unique};
use secretsync_core::config::SourceConfig;
use secretsync_core::secret::Collected;
use secretsync_engine::ErrorKind;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::vault::VaultClient;
use secretsync_test_support::http::Response;
use secretsync_test_support::proxy::{Action, Proxy, Recorder, Rule};
use serde_json::json;

/// A mount with `top`, `app/db`, `app/api` and `app/deep/cfg`, a proxy in front of OpenBao, and
/// a root client that talks through the proxy.
struct Setup {
    mount: String,
    proxy: Proxy,
    client: VaultClient,
    src: SourceConfig,
}

async fn setup() -> Setup {
    let bao = Bao::from_env();
    let mount = unique("flt");
    bao.enable_kv2(&mount).await;
    for (p, v) in [
        ("top", json!({"v": 1})),
        ("app/db", json!({"password": "pw"})),
        ("app/api", json!({"key": "k"})),
        ("app/deep/cfg", json!({"level": 1})),
    ] {
        bao.put(&mount, p, v).await;
    }
    let proxy = Proxy::start(&bao.addr);
    let mut through = bao.clone();
    through.addr = proxy.url();
    let client = through.root_client().await;
    let src = source("src", &format!("{mount}/"));
    Setup {
        mount,
        proxy,
        client,
        src,
    }
}

impl Setup {
    fn list(&self, folder: &str) -> Rule {
        Rule::method("GET")
            .path_prefix(&format!("/v1/{}/metadata/{folder}", self.mount))
            .query("list=true")
    }

    fn read(&self, path: &str) -> Rule {
        Rule::method("GET").path_prefix(&format!("/v1/{}/data/{path}", self.mount))
    }

    async fn read_source(&self) -> secretsync_engine::Result<Collected> {
        secretsync_engine::vault::read_source(&self.client, &self.src, 4, &Cancel::default()).await
    }
}

/// The damaged bodies of a 200 answer.
fn damaged() -> Vec<(&'static str, Action)> {
    vec![
        ("truncated", Action::TruncateBody),
        ("not JSON", Action::body("<html>bad gateway</html>")),
        ("{}", Action::body("{}")),
        ("empty", Action::body("")),
    ]
}

#[tokio::test]
async fn a_damaged_folder_listing_is_a_gap_naming_the_folder() {
    let s = setup().await;
    for (what, action) in damaged() {
        s.proxy.clear();
        let rule = s.proxy.add(s.list("app/").then(action));
        let read = s
            .read_source()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(s.proxy.hits(rule), 1, "{what}");
        assert_eq!(
            read.secrets.keys().collect::<Vec<_>>(),
            ["top"],
            "{what}: only what was listed is desired"
        );
        assert_eq!(read.incomplete.len(), 1, "{what}: {:?}", read.incomplete);
        let gap = &read.incomplete[0];
        assert!(
            gap.path == "app/" && gap.reason.contains("could not be listed"),
            "{what}: {gap}"
        );
        // The client's own error says what was wrong and where.
        let err = s
            .client
            .list(&format!("{}/", s.mount), "app/")
            .await
            .expect_err(what);
        assert_eq!(err.kind, ErrorKind::Unexpected, "{what}: {err}");
        assert!(
            err.message.contains(&format!("{}/metadata/app/", s.mount)),
            "{what}: the error names the path: {err}"
        );
    }
}

#[tokio::test]
async fn a_damaged_secret_read_is_a_gap_naming_the_secret() {
    let s = setup().await;
    for (what, action) in damaged() {
        s.proxy.clear();
        let rule = s.proxy.add(s.read("app/db").then(action));
        let read = s
            .read_source()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(s.proxy.hits(rule), 1, "{what}");
        assert!(!read.secrets.contains_key("app/db"), "{what}");
        assert_eq!(read.secrets.len(), 3, "{what}: the rest is read");
        assert_eq!(read.incomplete.len(), 1, "{what}: {:?}", read.incomplete);
        assert!(
            read.incomplete[0].path == "app/db"
                && read.incomplete[0].reason.contains("could not be read"),
            "{what}: {:?}",
            read.incomplete
        );
        let err = s
            .client
            .read(&format!("{}/", s.mount), "app/db")
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: a damaged read is an error"));
        assert!(
            err.message.contains(&format!("{}/data/app/db", s.mount)),
            "{what}: {err}"
        );
    }
}

/// The source's own folder is the first LIST: damaged, it fails the read (an unreadable source
/// is never a source with gaps everywhere).
#[tokio::test]
async fn a_damaged_listing_of_the_source_folder_fails_the_read() {
    let s = setup().await;
    let root = s.proxy.add(
        Rule::method("GET")
            .path_prefix(&format!("/v1/{}/metadata/", s.mount))
            .query("list=true")
            .then(Action::body("{}"))
            .times(1),
    );
    let err = s
        .read_source()
        .await
        .expect_err("no gap for the source folder itself");
    assert_eq!(s.proxy.hits(root), 1);
    assert!(
        err.message.contains("data.keys")
            && err.message.contains(&format!("{}/metadata/", s.mount)),
        "{err}"
    );
}

#[tokio::test]
async fn vault_5xx_and_resets_are_retried_then_fail_naming_the_path() {
    let s = setup().await;
    // Transient: two 503s, then two resets, then the real answer.
    let e503 = s.proxy.add(
        s.list("app/")
            .then(Action::status(503, r#"{"errors":["Vault is sealed"]}"#))
            .times(2),
    );
    let reset = s
        .proxy
        .add(s.read("top").then(Action::ResetBeforeForward).times(2));
    let read = s.read_source().await.expect("transient faults are retried");
    assert!(read.is_complete(), "{:?}", read.incomplete);
    assert_eq!(read.secrets.len(), 4);
    assert_eq!((s.proxy.hits(e503), s.proxy.hits(reset)), (2, 2));

    // Persistent: the whole read fails (Vault is failing, not one path), naming the path.
    s.proxy.clear();
    let always = s.proxy.add(
        s.list("app/deep/")
            .then(Action::status(500, r#"{"errors":["boom"]}"#)),
    );
    let err = s
        .read_source()
        .await
        .expect_err("persistent 500s fail the read");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        err.message.contains("500")
            && err.message.contains("app/deep/")
            && err.message.contains("boom"),
        "{err}"
    );
    assert_eq!(s.proxy.hits(always), 4, "four attempts");

    s.proxy.clear();
    s.proxy
        .add(s.read("app/api").then(Action::ResetBeforeForward));
    let err = s
        .read_source()
        .await
        .expect_err("persistent resets fail the read");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("app/api"), "{err}");
}

#[tokio::test]
async fn redirects_are_followed_within_the_vault_origin_only() {
    let s = setup().await;
    // Same origin (the proxy itself): followed, with the token, and the read is complete.
    let same = s.proxy.add(
        s.list("app/")
            .then(Action::redirect(&s.proxy.url()))
            .times(1),
    );
    let read = s.read_source().await.unwrap();
    assert!(read.is_complete(), "{:?}", read.incomplete);
    assert_eq!(read.secrets.len(), 4);
    assert_eq!(s.proxy.hits(same), 1);
    assert!(s.proxy.matched(same) >= 2, "the redirect was followed");

    // Another origin: not followed; the token never reaches it; the folder is a gap.
    let other = Recorder::start(Response::new(200, br#"{"data":{"keys":[]}}"#.to_vec()));
    s.proxy.clear();
    s.proxy
        .add(s.list("app/").then(Action::redirect(&other.url())));
    s.proxy
        .add(s.read("top").then(Action::redirect(&other.url())));
    let read = s.read_source().await.unwrap();
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert!(!other.saw_header("x-vault-token"));
    assert_eq!(read.incomplete.len(), 2, "{:?}", read.incomplete);
    assert!(read.incomplete.iter().any(|g| g.path == "app/"));
    assert!(read.incomplete.iter().any(|g| g.path == "top"));
    let err = s
        .client
        .list(&format!("{}/", s.mount), "app/")
        .await
        .expect_err("a cross-origin redirect is an error");
    assert!(
        err.message.contains("307") && err.message.contains(&other.url()),
        "names the status and where it pointed: {err}"
    );
}

#[tokio::test]
async fn a_secret_nested_past_the_parser_limit_is_a_gap_not_a_crash() {
    let bao = Bao::from_env();
    let s = setup().await;
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "n": deep });
    }
    bao.put(&s.mount, "app/db", deep).await;
    let read = s.read_source().await.expect("a gap, not a failure");
    assert!(!read.secrets.contains_key("app/db"));
    assert_eq!(read.incomplete.len(), 1, "{:?}", read.incomplete);
    assert!(read.incomplete[0].path == "app/db", "{:?}", read.incomplete);
    let err = s
        .client
        .read(&format!("{}/", s.mount), "app/db")
        .await
        .err()
        .expect("an error");
    assert!(err.message.contains("recursion limit"), "says why: {err}");
}
