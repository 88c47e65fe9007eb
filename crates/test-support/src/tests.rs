//! The proxy against a [`Recorder`] upstream, spoken to with plain blocking sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::http::Response;
use crate::proxy::{Action, Proxy, Recorder, Rule};

fn upstream() -> Recorder {
    Recorder::start(Response::new(
        200,
        br#"{"data":{"keys":["a","b/"]}}"#.to_vec(),
    ))
}

fn connect(url: &str) -> TcpStream {
    let s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends one request and reads one answer (`Content-Length` framed); `None` if the connection
/// was closed or reset instead.
fn exchange(
    s: &mut TcpStream,
    method: &str,
    target: &str,
    extra: &str,
    body: &str,
) -> Option<(u16, String, String)> {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return Some((status, head, body));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn passes_through_on_one_keep_alive_connection_and_counts() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    let counted = proxy.add(Rule::method("post").path_prefix("/v1/x"));
    let mut c = connect(&proxy.url());
    let (status, _, body) =
        exchange(&mut c, "GET", "/v1/secret/metadata/?list=true", "", "").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"data":{"keys":["a","b/"]}}"#)
    );
    let (status, _, _) = exchange(
        &mut c,
        "POST",
        "/v1/x/y",
        "X-Vault-Token: t\r\n",
        "{\"a\":1}",
    )
    .unwrap();
    assert_eq!(status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body_text(), "{\"a\":1}");
    assert_eq!(seen[1].header("x-vault-token"), Some("t"));
    assert_eq!((proxy.hits(counted), proxy.requests().len()), (1, 2));
}

#[test]
fn the_first_n_matches_fail_then_requests_pass() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    let put = proxy.add(
        Rule::amz_target("secretsmanager.PutSecretValue")
            .body_contains("zz")
            .then(Action::aws_error(400, "ThrottlingException", "slow down"))
            .times(2),
    );
    let mut c = connect(&proxy.url());
    let put_req = |c: &mut TcpStream, body: &str| {
        exchange(
            c,
            "POST",
            "/",
            "X-Amz-Target: secretsmanager.PutSecretValue\r\n",
            body,
        )
        .unwrap()
    };
    let (s, head, body) = put_req(&mut c, "{\"SecretId\":\"zz\"}");
    assert_eq!(s, 400);
    assert!(
        head.contains("x-amzn-ErrorType: ThrottlingException"),
        "{head}"
    );
    assert!(body.contains(r#""__type":"ThrottlingException""#), "{body}");
    assert_eq!(
        put_req(&mut c, "{\"SecretId\":\"other\"}").0,
        200,
        "another body passes"
    );
    assert_eq!(put_req(&mut c, "{\"SecretId\":\"zz\"}").0, 400);
    assert_eq!(
        put_req(&mut c, "{\"SecretId\":\"zz\"}").0,
        200,
        "only the first two fail"
    );
    assert_eq!((proxy.hits(put), proxy.matched(put)), (2, 3));
    assert_eq!(
        up.requests().len(),
        2,
        "failed requests never reach upstream"
    );
}

#[test]
fn bodies_are_replaced_or_truncated_with_correct_framing() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    proxy.add(
        Rule::any()
            .query("list=true")
            .then(Action::TruncateBody)
            .times(1),
    );
    proxy.add(
        Rule::any()
            .query("list=true")
            .then(Action::body("{}"))
            .times(1),
    );
    let mut c = connect(&proxy.url());
    let (_, _, body) = exchange(&mut c, "GET", "/a?list=true", "", "").unwrap();
    assert_eq!(body, r#"{"data":{"keys"#, "the first half");
    let (_, _, body) = exchange(&mut c, "GET", "/a?list=true", "", "").unwrap();
    assert_eq!(body, "{}");
    let (_, _, body) = exchange(&mut c, "GET", "/a?list=true", "", "").unwrap();
    assert_eq!(body, r#"{"data":{"keys":["a","b/"]}}"#);
}

#[test]
fn redirects_name_the_other_origin_and_keep_the_path() {
    let up = upstream();
    let other = upstream();
    let proxy = Proxy::start(&up.url());
    proxy.add(Rule::any().then(Action::redirect(&other.url())));
    let mut c = connect(&proxy.url());
    let (status, head, _) =
        exchange(&mut c, "GET", "/v1/kv/metadata/x/?list=true", "", "").unwrap();
    assert_eq!(status, 307);
    assert!(
        head.contains(&format!(
            "Location: {}/v1/kv/metadata/x/?list=true",
            other.url()
        )),
        "{head}"
    );
    assert!(up.requests().is_empty() && other.requests().is_empty());
}

#[test]
fn resets_before_and_after_forwarding() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    let before = proxy.add(
        Rule::method("GET")
            .then(Action::ResetBeforeForward)
            .times(1),
    );
    let after = proxy.add(
        Rule::method("POST")
            .then(Action::ResetAfterForward)
            .times(1),
    );
    let mut c = connect(&proxy.url());
    assert!(exchange(&mut c, "GET", "/", "", "").is_none());
    assert!(
        up.requests().is_empty(),
        "reset before forwarding: nothing reached upstream"
    );
    let mut c = connect(&proxy.url());
    assert!(exchange(&mut c, "POST", "/w", "", "write").is_none());
    assert_eq!(
        up.requests().len(),
        1,
        "reset after forwarding: the write landed"
    );
    let mut c = connect(&proxy.url());
    assert_eq!(exchange(&mut c, "POST", "/w", "", "write").unwrap().0, 200);
    assert_eq!((proxy.hits(before), proxy.hits(after)), (1, 1));
}

#[test]
fn delays_and_stalls() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    let slow = proxy.add(Rule::method("GET").then(Action::Delay(Duration::from_millis(50))));
    let stall = proxy.add(Rule::method("PUT").then(Action::StallAfterForward));
    let mut c = connect(&proxy.url());
    assert_eq!(exchange(&mut c, "GET", "/", "", "").unwrap().0, 200);
    assert!(proxy.wait_for_hits(slow, 1, Duration::from_secs(1)));
    let mut c = connect(&proxy.url());
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        exchange(&mut c, "PUT", "/", "", "x").is_none(),
        "a stalled answer never comes"
    );
    assert_eq!((proxy.hits(stall), up.requests().len()), (1, 2));
}

#[test]
fn an_answer_after_forwarding_replaces_the_real_one_and_paths_match_anywhere() {
    let up = upstream();
    let proxy = Proxy::start(&up.url());
    let lost = proxy.add(
        Rule::method("POST")
            .path_contains("/data/lost")
            .then(Action::status(502, r#"{"errors":["lost"]}"#).after_forward())
            .times(1),
    );
    let mut c = connect(&proxy.url());
    let (status, _, body) = exchange(&mut c, "POST", "/v1/kv/data/lost?x=1", "", "w").unwrap();
    assert_eq!((status, body.as_str()), (502, r#"{"errors":["lost"]}"#));
    assert_eq!(up.requests().len(), 1, "the write reached upstream");
    assert_eq!(
        exchange(&mut c, "POST", "/v1/kv/data/lost", "", "w")
            .unwrap()
            .0,
        200,
        "only the first answer is lost"
    );
    assert_eq!(
        exchange(&mut c, "POST", "/v1/kv/data/other?p=/data/lost", "", "w")
            .unwrap()
            .0,
        200,
        "the query is not the path"
    );
    assert_eq!((proxy.hits(lost), proxy.matched(lost)), (1, 2));
    assert_eq!(up.requests().len(), 3);
}

#[test]
#[should_panic(expected = "only an answer can be given after forwarding")]
fn only_answers_come_after_forwarding() {
    let _ = Action::TruncateBody.after_forward();
}
