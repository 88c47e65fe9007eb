"""A contract fake of the Azure Key Vault *secrets* data-plane REST API, for tests only.

    python azure_keyvault.py --port PORT --cert server.pem --key server-key.pem --token TOKEN
                             [--recover-delay 0.2] [--delete-delay 0.2]

No emulator of Key Vault exists that runs without Docker, so this is written from the public
REST reference (https://learn.microsoft.com/rest/api/keyvault/secrets) and checked against
Microsoft's own Python client (`check_azure_keyvault.py`, run by the Rust test
`crates/engine/tests/fake_azure_contract.rs`). Standard library only. It speaks HTTPS (the
Azure clients refuse plain HTTP for bearer tokens) with the throw-away test CA that
`scripts/servers.sh` writes (`test_ca.py`).

What it models (what SecretSync's `azure_keyvault` target and the check use):

* Challenge authentication as the service does it: a request without a valid
  `Authorization: Bearer <TOKEN>` is answered 401 with
  `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"` and the error `Unauthorized`, before its body is read
  (the clients send their first request without a body and expect exactly this). A wrong
  token gets the same 401 (code `Unauthorized`, "AKV10032: Invalid issuer").
* `api-version` is required (400 `BadParameter` otherwise); the versions the clients send
  (7.x and dated ones: 2025-07-01 from the Rust SDK, 2026-04-01 from the Python one) are
  accepted and answer the same shapes (the fake does not model differences between versions).
* Names: `^[0-9a-zA-Z-]{1,127}$` (400 `BadParameter` otherwise), **case-insensitive** (a
  secret keeps the spelling of its first write; any spelling reaches it).
* Set Secret (`PUT /secrets/{name}`): a new version (32 hex digits) with `value`,
  `contentType`, `tags`, `attributes.enabled`; at most 15 tags (400 `BadParameter`), tag keys
  ≤ 512 and values ≤ 256 characters, values ≤ 25 KiB (400 `BadParameter`). Setting a name that
  is soft-deleted is 409 `Conflict` (inner `ObjectIsDeletedButRecoverable`); while the
  deletion is still in progress, 409 `ObjectIsBeingDeleted`.
* Get Secret (latest: `/secrets/{name}` or `/secrets/{name}/`, or by version), Update Secret
  properties (`PATCH /secrets/{name}/{version}`, version empty = latest: `contentType`,
  `tags`, `attributes.enabled`), Get Secrets (`/secrets`) and Get Secret Versions
  (`/secrets/{name}/versions`) with `maxresults` (1..25, default 25) and `nextLink` paging
  (an absolute URL with `$skiptoken`).
* Delete Secret (soft delete; the vault is soft-delete enabled, `Recoverable+Purgeable`, 90
  days): the answer is the deleted secret at once, but the deletion completes only after
  `--delete-delay` seconds, as the real service's does asynchronously: until then the name
  is neither a secret nor a readable deleted secret (Get Deleted Secret 404), purge and
  recover are 409 `ObjectIsBeingDeleted`. Get Deleted Secret(s) (`/deletedsecrets`, paged),
  Recover (`POST /deletedsecrets/{name}/recover`: the answer comes at once, the secret is
  readable again only after `--recover-delay` seconds, so a client must poll, as with the
  real service), Purge (`DELETE /deletedsecrets/{name}`, 204).
* Error bodies are the service's shape: `{"error": {"code": …, "message": …}}` (plus
  `innererror.code` where the service sends one); not found is 404 `SecretNotFound`.

What it does not model: throttling (429 with `Retry-After`), RBAC/access policies (403
`Forbidden`), disabled secrets' read refusal, `expires`/`nbf`, certificates-backed (managed)
secrets, backup/restore, purge protection, vaults without soft delete, private endpoints,
real tokens (any request with exactly the configured token is allowed everything), exact
error wordings beyond their codes. Those error cases are covered by unit tests with a scripted
transport in the Rust target's client instead. State is in memory and lost on exit.
"""

import argparse
import base64
import json
import re
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# 7.x and the dated versions (2025-07-01 from the Rust SDK, 2026-04-01 from the Python one).
API_VERSION = re.compile(r"^(7\.[0-9]|20[2-9][0-9]-[01][0-9]-[0-3][0-9])(-preview)?$")
MAX_TAGS = 15
MAX_VALUE = 25 * 1024
MAX_RESULTS = 25
TENANT = "00000000-0000-0000-0000-000000000000"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90


class Fail(Exception):
    def __init__(self, status, code, message, inner=None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


def not_found(name):
    return Fail(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


def deleted_not_found(name):
    return Fail(404, "SecretNotFound", f"Deleted Secret not found: {name}")


class Store:
    """Secrets by lower-cased name: {name, versions: [..], deleted: None | {...}, ready: t}."""

    def __init__(self, delete_delay, recover_delay):
        self.lock = threading.Lock()
        self.secrets = {}
        self.delete_delay = delete_delay
        self.recover_delay = recover_delay

    def entry(self, name):
        return self.secrets.get(name.lower())

    def state(self, e):
        """`live`, `recovering`, `deleting` or `deleted`."""
        now = time.monotonic()
        if e["deleted"] is not None:
            return "deleting" if now < e["ready"] else "deleted"
        return "recovering" if now < e["ready"] else "live"


def attrs(v):
    return {
        "enabled": v["enabled"],
        "created": v["created"],
        "updated": v["updated"],
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeKeyVault/1"

    def log_message(self, fmt, *args):  # quiet; never logs bodies
        pass

    # --- plumbing -------------------------------------------------------------------------
    def base(self):
        return f"https://{self.headers.get('Host') or '127.0.0.1'}"

    def send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", secrets.token_hex(8))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def fail(self, f):
        err = {"code": f.code, "message": f.message}
        if f.inner:
            err["innererror"] = {"code": f.inner}
        headers = {"WWW-Authenticate": CHALLENGE} if f.status == 401 else None
        self.send(f.status, {"error": err}, headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise Fail(400, "BadParameter", "The request body is not valid JSON")
        if not isinstance(body, dict):
            raise Fail(400, "BadParameter", "The request body must be a JSON object")
        return body

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def authorized(self):
        auth = self.headers.get("Authorization") or ""
        if not auth:
            raise Fail(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        if auth != f"Bearer {self.server.token}":
            raise Fail(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/..., found a token it cannot verify.")

    def dispatch(self, method):
        try:
            try:
                self.authorized()
            except Fail:
                self.drain()
                raise
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            ver = (q.get("api-version") or [None])[0]
            if ver is None:
                self.drain()
                raise Fail(400, "BadParameter", "The 'api-version' query parameter is missing")
            if not API_VERSION.match(ver):
                self.drain()
                raise Fail(400, "BadParameter", f"The specified version ({ver}) is not recognized. Consider using the latest supported version (2025-07-01).")
            self.api_version = ver
            body = self.read_body() if method in ("PUT", "PATCH", "POST") else {}
            parts = [p for p in url.path.split("/")]
            # "/secrets/x/" keeps a trailing empty part: the "latest" version.
            parts = parts[1:]
            self.route(method, parts, q, body)
        except Fail as f:
            self.fail(f)
        except Exception as e:  # a bug in the fake: say so, never hang the client
            self.send(500, {"error": {"code": "InternalError", "message": f"fake bug: {type(e).__name__}: {e}"}})

    def do_GET(self):
        self.dispatch("GET")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_POST(self):
        self.dispatch("POST")

    # --- routes ---------------------------------------------------------------------------
    def route(self, m, p, q, body):
        st = self.server.store
        if p and p[-1] == "" and len(p) > 1 and not (p[0] == "secrets" and len(p) == 3):
            p = p[:-1]
        with st.lock:
            if p == ["secrets"] and m == "GET":
                return self.list_secrets(q)
            if p == ["deletedsecrets"] and m == "GET":
                return self.list_deleted(q)
            if len(p) >= 2 and p[0] in ("secrets", "deletedsecrets"):
                name = p[1]
                if not NAME.match(name):
                    raise Fail(400, "BadParameter", f"The request URI contains an invalid name: {name}")
                rest = p[2:]
                if p[0] == "secrets":
                    if m == "PUT" and rest == []:
                        return self.set_secret(name, body)
                    if m == "DELETE" and rest == []:
                        return self.delete_secret(name)
                    if m == "GET" and rest == ["versions"]:
                        return self.list_versions(name, q)
                    if m == "GET" and len(rest) <= 1:
                        return self.get_secret(name, rest[0] if rest else "")
                    if m == "PATCH" and len(rest) <= 1:
                        return self.update_secret(name, rest[0] if rest else "", body)
                else:
                    if m == "GET" and rest == []:
                        return self.get_deleted(name)
                    if m == "DELETE" and rest == []:
                        return self.purge(name)
                    if m == "POST" and rest == ["recover"]:
                        return self.recover(name)
        raise Fail(405 if p and p[0] in ("secrets", "deletedsecrets") else 404,
                   "BadParameter" if p and p[0] in ("secrets", "deletedsecrets") else "NotFound",
                   f"{m} {'/'.join(p)} is not an operation of this (fake) Key Vault")

    def bundle(self, e, v, with_value=True):
        b = {
            "id": f"{self.base()}/secrets/{e['name']}/{v['version']}",
            "attributes": attrs(v),
            "tags": dict(v["tags"]),
        }
        if v["contentType"] is not None:
            b["contentType"] = v["contentType"]
        if with_value:
            b["value"] = v["value"]
        return b

    def deleted_bundle(self, e, with_value=True):
        v = e["versions"][-1]
        b = self.bundle(e, v, with_value)
        b["recoveryId"] = f"{self.base()}/deletedsecrets/{e['name']}"
        b["deletedDate"] = e["deleted"]["deletedDate"]
        b["scheduledPurgeDate"] = e["deleted"]["scheduledPurgeDate"]
        return b

    def item(self, e, v, with_version):
        it = {
            "id": f"{self.base()}/secrets/{e['name']}" + (f"/{v['version']}" if with_version else ""),
            "attributes": attrs(v),
            "tags": dict(v["tags"]),
        }
        if v["contentType"] is not None:
            it["contentType"] = v["contentType"]
        return it

    def live(self, name):
        e = self.server.store.entry(name)
        if e is None or self.server.store.state(e) != "live":
            raise not_found(name)
        return e

    def check_tags(self, tags):
        if tags is None:
            return {}
        if not isinstance(tags, dict):
            raise Fail(400, "BadParameter", "Property tags must be an object of strings")
        if len(tags) > MAX_TAGS:
            raise Fail(400, "BadParameter", f"The number of tags ({len(tags)}) exceeds the maximum of {MAX_TAGS} tags")
        for k, val in tags.items():
            if not isinstance(val, str):
                raise Fail(400, "BadParameter", f"Tag '{k}' must have a string value")
            if len(k) > 512 or len(val) > 256:
                raise Fail(400, "BadParameter", "A tag name may have at most 512 and a tag value at most 256 characters")
        return dict(tags)

    def set_secret(self, name, body):
        st = self.server.store
        value = body.get("value")
        if not isinstance(value, str):
            raise Fail(400, "BadParameter", "Property value is required and must be a string")
        if len(value.encode()) > MAX_VALUE:
            raise Fail(400, "BadParameter", f"Secret value is too large: at most {MAX_VALUE} bytes")
        tags = self.check_tags(body.get("tags"))
        ct = body.get("contentType")
        if ct is not None and not isinstance(ct, str):
            raise Fail(400, "BadParameter", "Property contentType must be a string")
        enabled = (body.get("attributes") or {}).get("enabled", True)
        e = st.entry(name)
        if e is not None:
            s = st.state(e)
            if s == "deleting":
                raise Fail(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
            if s == "deleted":
                raise Fail(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", "ObjectIsDeletedButRecoverable")
            if s == "recovering":
                raise Fail(409, "Conflict", f"Secret {name} is currently being recovered.", "ObjectIsBeingRecovered")
        else:
            e = {"name": name, "versions": [], "deleted": None, "ready": 0.0}
            st.secrets[name.lower()] = e
        now = int(time.time())
        v = {
            "version": secrets.token_hex(16),
            "value": value,
            "contentType": ct,
            "tags": tags,
            "enabled": bool(enabled),
            "created": now,
            "updated": now,
        }
        e["versions"].append(v)
        self.send(200, self.bundle(e, v))

    def version_of(self, e, name, version):
        if version == "":
            return e["versions"][-1]
        for v in e["versions"]:
            if v["version"] == version:
                return v
        raise Fail(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found in this key vault.")

    def get_secret(self, name, version):
        e = self.live(name)
        self.send(200, self.bundle(e, self.version_of(e, name, version)))

    def update_secret(self, name, version, body):
        e = self.live(name)
        v = self.version_of(e, name, version)
        if "tags" in body:
            v["tags"] = self.check_tags(body.get("tags"))
        if "contentType" in body:
            v["contentType"] = body["contentType"]
        if "enabled" in (body.get("attributes") or {}):
            v["enabled"] = bool(body["attributes"]["enabled"])
        v["updated"] = int(time.time())
        self.send(200, self.bundle(e, v, with_value=False))

    def page(self, items, q, path):
        try:
            n = int((q.get("maxresults") or [MAX_RESULTS])[0])
        except ValueError:
            raise Fail(400, "BadParameter", "maxresults must be an integer")
        if not 1 <= n <= MAX_RESULTS:
            raise Fail(400, "BadParameter", f"maxresults must be between 1 and {MAX_RESULTS}")
        skip = 0
        tok = (q.get("$skiptoken") or [None])[0]
        if tok:
            try:
                skip = int(base64.urlsafe_b64decode(tok.encode()).decode())
            except ValueError:
                raise Fail(400, "BadParameter", "The $skiptoken is not valid")
        chunk = items[skip: skip + n]
        nxt = None
        if skip + n < len(items):
            token = base64.urlsafe_b64encode(str(skip + n).encode()).decode()
            nxt = f"{self.base()}{path}?api-version={self.api_version}&$skiptoken={quote(token)}&maxresults={n}"
        self.send(200, {"value": chunk, "nextLink": nxt})

    def list_secrets(self, q):
        st = self.server.store
        items = [self.item(e, e["versions"][-1], False)
                 for _, e in sorted(st.secrets.items()) if st.state(e) == "live"]
        self.page(items, q, "/secrets")

    def list_versions(self, name, q):
        e = self.live(name)
        self.page([self.item(e, v, True) for v in e["versions"]], q, f"/secrets/{e['name']}/versions")

    def delete_secret(self, name):
        st = self.server.store
        e = self.live(name)
        now = int(time.time())
        e["deleted"] = {"deletedDate": now, "scheduledPurgeDate": now + RECOVERABLE_DAYS * 86400}
        e["ready"] = time.monotonic() + st.delete_delay
        self.send(200, self.deleted_bundle(e, with_value=False))

    def deleted(self, name):
        st = self.server.store
        e = st.entry(name)
        if e is None or st.state(e) not in ("deleted", "deleting"):
            raise deleted_not_found(name)
        return e

    def get_deleted(self, name):
        e = self.deleted(name)
        if self.server.store.state(e) == "deleting":
            raise deleted_not_found(name)
        self.send(200, self.deleted_bundle(e, with_value=False))

    def list_deleted(self, q):
        st = self.server.store
        items = []
        for _, e in sorted(st.secrets.items()):
            if st.state(e) == "deleted":
                b = self.deleted_bundle(e, with_value=False)
                b["id"] = f"{self.base()}/secrets/{e['name']}"
                items.append(b)
        self.page(items, q, "/deletedsecrets")

    def purge(self, name):
        st = self.server.store
        e = self.deleted(name)
        if st.state(e) == "deleting":
            raise Fail(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
        del st.secrets[name.lower()]
        self.send(204)

    def recover(self, name):
        st = self.server.store
        e = self.deleted(name)
        if st.state(e) == "deleting":
            raise Fail(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
        e["deleted"] = None
        e["ready"] = time.monotonic() + st.recover_delay
        self.send(200, self.bundle(e, e["versions"][-1], with_value=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--delete-delay", type=float, default=0.2)
    ap.add_argument("--recover-delay", type=float, default=0.2)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.token = a.token
    srv.store = Store(a.delete_delay, a.recover_delay)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
