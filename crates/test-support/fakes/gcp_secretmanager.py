"""A contract fake of Google Cloud Secret Manager's REST API (v1), for tests.

    python gcp_secretmanager.py PORT TLS_DIR TOKEN [FAILING_PORT]

serves https://127.0.0.1:PORT with TLS_DIR/server.pem and TLS_DIR/server-key.pem (written by
test_ca.py) and accepts only `Authorization: Bearer TOKEN`. Standard library only. No emulator
of Secret Manager exists outside Docker images, so this follows the public REST reference
(https://cloud.google.com/secret-manager/docs/reference/rest) for what SecretSync's target and
its check script (check_gcp_secretmanager.py, which drives Google's official Python client
against it) use.

Covers, for global secrets (`projects/P/secrets/S`) and regional ones
(`projects/P/locations/L/secrets/S`), state kept in memory:
  * secrets: create (`secretId` checked: [A-Za-z0-9_-]{1,255}; global ones need a
    `replication`, regional ones must not have one; labels checked: at most 64, keys
    [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63}), get, list (`pageSize`, default 25000
    capped at 25000, `pageToken`; `filter` only in the forms `labels.KEY=VALUE` and
    `labels.KEY:*`, joined by spaces or AND), patch (`updateMask` of `labels`, `annotations`;
    an `etag` in the body must match), delete (`etag` query checked);
  * versions: addVersion (payload `data` base64, at most 65536 bytes, versions numbered from
    1), get, list (newest first, `pageSize`/`pageToken`, `filter` `state:ENABLED|DISABLED|
    DESTROYED`), access (`latest` = the newest version of any state; a disabled or destroyed
    version answers FAILED_PRECONDITION), enable, disable, destroy (etag checked when given);
  * errors as Google sends them: `{"error": {"code", "message", "status"}}` with NOT_FOUND,
    ALREADY_EXISTS, INVALID_ARGUMENT, FAILED_PRECONDITION, UNAUTHENTICATED (401);
  * `$alt=json;enum-encoding=int` (what Google's clients ask for): enums as numbers.

Does not model: IAM (any valid token may do anything; PERMISSION_DENIED is never answered),
quotas (no RESOURCE_EXHAUSTED), ABORTED, CMEK, rotation, topics, expiration, annotations'
limits, version aliases, `version_destroy_ttl`, the full filter language, CRC32C checksums,
long-running operations, locations listing, persistence across restarts. The Rust target's
handling of the errors this fake never answers is unit tested through the client library's
stub seam (crates/engine/src/targets/gcp_secretmanager/tests.rs).

FAILING_PORT, when given, serves the same state but answers 400 INVALID_ARGUMENT "injected
failure" to every POST, PATCH or DELETE whose path or query contains `zz-fail` (the
conformance suite's rollback step; a TLS endpoint cannot sit behind the plain fault proxy).
"""

import base64
import datetime
import http.server
import itertools
import json
import re
import ssl
import sys
import threading
import urllib.parse

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
STATES = {"ENABLED": 1, "DISABLED": 2, "DESTROYED": 3}
PATH_RE = re.compile(
    r"^/v1/(?P<parent>projects/[^/]+(?:/locations/[^/]+)?)/secrets"
    r"(?:/(?P<secret>[^/:]+)(?P<rest>.*))?$"
)
MAX_PAGE = 25000

LOCK = threading.Lock()
SECRETS = {}  # full name -> {"secret": dict, "versions": {n: dict}, "next": int}
ETAGS = itertools.count(1)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    def __init__(self, http_code, status, message):
        super().__init__(message)
        self.http_code, self.status, self.message = http_code, status, message


def bad(msg):
    return ApiError(400, "INVALID_ARGUMENT", msg)


def not_found(what):
    return ApiError(404, "NOT_FOUND", f"{what} not found or has no versions.")


def new_etag():
    return f'"{next(ETAGS):016x}"'


def check_labels(labels):
    if not isinstance(labels, dict):
        raise bad("labels must be a map")
    if len(labels) > 64:
        raise bad("a secret may have at most 64 labels")
    for k, v in labels.items():
        if not LABEL_KEY_RE.match(k):
            raise bad(f"label key {k!r} is invalid")
        if not isinstance(v, str) or not LABEL_VALUE_RE.match(v):
            raise bad(f"label value {v!r} of {k!r} is invalid")


def page(items, query, default):
    try:
        size = int(query.get("pageSize", [default])[0]) or default
        start = int(query.get("pageToken", ["0"])[0] or "0")
    except ValueError:
        raise bad("bad pageSize or pageToken")
    size = min(size, MAX_PAGE)
    chunk = items[start : start + size]
    token = str(start + size) if start + size < len(items) else ""
    return chunk, token


def label_filter(expr):
    tests = []
    for term in [t for t in re.split(r"\s+(?:AND\s+)?", expr.strip()) if t]:
        m = re.match(r"^labels\.([a-z][a-z0-9_-]*)(=|:)(.*)$", term)
        if not m:
            raise bad(f"unsupported filter term {term!r}")
        key, op, value = m.groups()
        if op == ":" and value == "*":
            tests.append(lambda s, k=key: k in s["labels"])
        elif op == "=":
            tests.append(lambda s, k=key, v=value: s["labels"].get(k) == v)
        else:
            raise bad(f"unsupported filter term {term!r}")
    return lambda s: all(t(s) for t in tests)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    token = ""
    fail_marker = None

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path.split("?")[0]))

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        raw = self.raw_body
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise bad("the body is not JSON")

    def handle_any(self):
        # Read the whole body first, whatever the answer: a body left unread on a kept-alive
        # connection would be taken for the next request.
        n = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(n) if n else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                )
            url = urllib.parse.urlsplit(self.path)
            if (
                self.fail_marker
                and self.command in ("POST", "PATCH", "DELETE")
                and self.fail_marker in urllib.parse.unquote(self.path)
            ):
                raise bad("injected failure")
            query = urllib.parse.parse_qs(url.query)
            self.ints = "enum-encoding=int" in query.get("$alt", [""])[0]
            m = PATH_RE.match(url.path)
            if not m:
                raise ApiError(404, "NOT_FOUND", f"no such method {url.path}")
            with LOCK:
                code, out = self.route(m["parent"], m["secret"], m["rest"] or "", query)
            self.send_json(code, out)
        except ApiError as e:
            self.send_json(
                e.http_code,
                {"error": {"code": e.http_code, "message": e.message, "status": e.status}},
            )

    do_GET = do_POST = do_PATCH = do_DELETE = handle_any

    def shown_version(self, v):
        out = dict(v)
        if self.ints:
            out["state"] = STATES[v["state"]]
        return out

    def route(self, parent, secret, rest, query):
        verb = self.command
        if secret is None:
            if verb == "GET":
                return self.list_secrets(parent, query)
            if verb == "POST":
                return self.create_secret(parent, query)
            raise ApiError(405, "INVALID_ARGUMENT", "method not allowed")
        name = f"{parent}/secrets/{secret}"
        if rest == "" and verb == "GET":
            return 200, self.entry(name)["secret"]
        if rest == "" and verb == "PATCH":
            return self.patch(name, query)
        if rest == "" and verb == "DELETE":
            e = self.entry(name)
            etag = query.get("etag", [""])[0]
            if etag and etag != e["secret"]["etag"]:
                raise ApiError(400, "FAILED_PRECONDITION", "The etag does not match.")
            del SECRETS[name]
            return 200, {}
        if rest == ":addVersion" and verb == "POST":
            return self.add_version(name)
        if rest == "/versions" and verb == "GET":
            return self.list_versions(name, query)
        m = re.match(r"^/versions/([^/:]+)(:access|:enable|:disable|:destroy)?$", rest)
        if not m:
            raise ApiError(404, "NOT_FOUND", f"no such method {rest}")
        e = self.entry(name)
        v = self.version(e, name, m[1])
        action = m[2]
        if action is None and verb == "GET":
            return 200, self.shown_version(v)
        if action == ":access" and verb == "GET":
            if v["state"] != "ENABLED":
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"{v['name']} is in {v['state']} state.",
                )
            data = e["data"][v["name"]]
            return 200, {"name": v["name"], "payload": {"data": base64.b64encode(data).decode()}}
        if action in (":enable", ":disable", ":destroy") and verb == "POST":
            b = self.body()
            if b.get("etag") and b["etag"] != v["etag"]:
                raise ApiError(400, "FAILED_PRECONDITION", "The etag does not match.")
            if v["state"] == "DESTROYED":
                raise ApiError(400, "FAILED_PRECONDITION", f"{v['name']} is destroyed.")
            v["state"] = {":enable": "ENABLED", ":disable": "DISABLED", ":destroy": "DESTROYED"}[action]
            if action == ":destroy":
                v["destroyTime"] = now()
                e["data"].pop(v["name"], None)
            v["etag"] = new_etag()
            return 200, self.shown_version(v)
        raise ApiError(405, "INVALID_ARGUMENT", "method not allowed")

    def entry(self, name):
        e = SECRETS.get(name)
        if e is None:
            raise not_found(f"Secret [{name}]")
        return e

    def version(self, e, name, vid):
        if vid == "latest":
            if not e["versions"]:
                raise not_found(f"Secret [{name}]")
            vid = str(max(e["versions"]))
        if not vid.isdigit() or int(vid) not in e["versions"]:
            raise not_found(f"Secret Version [{name}/versions/{vid}]")
        return e["versions"][int(vid)]

    def list_secrets(self, parent, query):
        items = sorted((n, e["secret"]) for n, e in SECRETS.items() if n.startswith(parent + "/secrets/"))
        secrets = [s for _, s in items]
        if "filter" in query:
            keep = label_filter(query["filter"][0])
            secrets = [s for s in secrets if keep(s)]
        chunk, token = page(secrets, query, MAX_PAGE)
        out = {"secrets": chunk, "totalSize": len(secrets)}
        if token:
            out["nextPageToken"] = token
        if not chunk:
            out.pop("secrets")
        return 200, out

    def create_secret(self, parent, query):
        sid = query.get("secretId", [""])[0]
        if not ID_RE.match(sid):
            raise bad(f"secret_id {sid!r} must match [a-zA-Z0-9_-]{{1,255}}")
        b = self.body()
        regional = "/locations/" in parent
        if regional and "replication" in b:
            raise bad("regional secrets have no replication")
        if not regional:
            rep = b.get("replication")
            ok = isinstance(rep, dict) and (
                "automatic" in rep
                or (
                    "userManaged" in rep
                    and rep["userManaged"].get("replicas")
                    and all(r.get("location") for r in rep["userManaged"]["replicas"])
                )
            )
            if not ok:
                raise bad("Secret.replication is required: automatic, or userManaged with replicas")
        labels = b.get("labels", {})
        check_labels(labels)
        name = f"{parent}/secrets/{sid}"
        if name in SECRETS:
            raise ApiError(409, "ALREADY_EXISTS", f"Secret [{name}] already exists.")
        secret = {"name": name, "createTime": now(), "labels": labels, "etag": new_etag()}
        if not regional:
            secret["replication"] = b["replication"]
        if b.get("annotations"):
            secret["annotations"] = b["annotations"]
        SECRETS[name] = {"secret": secret, "versions": {}, "next": 1, "data": {}}
        return 200, secret

    def patch(self, name, query):
        e = self.entry(name)
        b = self.body()
        mask = [p for p in query.get("updateMask", [""])[0].split(",") if p]
        if not mask:
            raise bad("update_mask is required")
        if b.get("etag") and b["etag"] != e["secret"]["etag"]:
            raise ApiError(400, "FAILED_PRECONDITION", "The etag does not match.")
        for path in mask:
            if path == "labels":
                labels = b.get("labels", {})
                check_labels(labels)
                e["secret"]["labels"] = labels
            elif path == "annotations":
                e["secret"]["annotations"] = b.get("annotations", {})
            else:
                raise bad(f"update_mask path {path!r} is not supported")
        e["secret"]["etag"] = new_etag()
        return 200, e["secret"]

    def add_version(self, name):
        e = self.entry(name)
        b = self.body()
        try:
            data = base64.b64decode(b.get("payload", {}).get("data", ""), validate=True)
        except (ValueError, AttributeError):
            raise bad("payload.data is not base64")
        if len(data) > 65536:
            raise bad("payload is larger than 65536 bytes")
        n = e["next"]
        e["next"] += 1
        vname = f"{name}/versions/{n}"
        v = {"name": vname, "createTime": now(), "state": "ENABLED", "etag": new_etag()}
        e["versions"][n] = v
        e["data"][vname] = data
        return 200, self.shown_version(v)

    def list_versions(self, name, query):
        e = self.entry(name)
        versions = [e["versions"][n] for n in sorted(e["versions"], reverse=True)]
        if "filter" in query:
            m = re.match(r"^state:(ENABLED|DISABLED|DESTROYED)$", query["filter"][0])
            if not m:
                raise bad("unsupported filter")
            versions = [v for v in versions if v["state"] == m[1]]
        chunk, token = page(versions, query, MAX_PAGE)
        out = {"versions": [self.shown_version(v) for v in chunk], "totalSize": len(versions)}
        if token:
            out["nextPageToken"] = token
        if not chunk:
            out.pop("versions")
        return 200, out


class Failing(Handler):
    fail_marker = "zz-fail"


def serve(port, handler, ctx):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def main(port, tls_dir, token, failing_port=None):
    Handler.token = token
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{tls_dir}/server.pem", f"{tls_dir}/server-key.pem")
    if failing_port:
        f = serve(failing_port, Failing, ctx)
        threading.Thread(target=f.serve_forever, daemon=True).start()
    serve(port, Handler, ctx).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:5])
