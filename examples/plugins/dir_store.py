#!/usr/bin/env python3
"""A SecretSync plugin (protocol version 1, docs/targets/plugin.md) that stores secrets in a
directory: one 0600 file per secret, holding JSON {"value": ..., "marks": ..., "version": N}.

Python 3 standard library only. Good enough for an example and for tests; not a vault.

    python3 dir_store.py --root /var/lib/secrets [--fail-on MARKER]

A secret name maps to a file name reversibly: every byte outside [A-Za-z0-9._-] (and `/`,
`%` itself) is written as %XX, so `apps/db` is `apps%2Fdb.json`. Writes go to a temporary
file that is renamed over the old one, so a reader never sees half a secret.

`--fail-on MARKER` (for tests only): every value write and every delete of a name containing
MARKER is refused with the error code `invalid` and the message "injected failure".
"""

import argparse
import json
import os
import sys
import tempfile

PROTOCOL = 1
PAGE = 500
SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def encode(name):
    out = []
    for b in name.encode("utf-8"):
        out.append(chr(b) if b in SAFE else "%%%02X" % b)
    s = "".join(out)
    # `.` and `..` alone are not file names we want.
    return s + ".json"


def decode(file_name):
    if not file_name.endswith(".json"):
        return None
    s = file_name[: -len(".json")]
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "%":
            out.append(int(s[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(s[i]))
            i += 1
    return out.decode("utf-8")


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Store:
    def __init__(self, root, fail_on=None):
        self.root = root
        self.fail_on = fail_on
        os.makedirs(root, mode=0o700, exist_ok=True)

    def path(self, name):
        if not isinstance(name, str) or not name:
            raise Refused("invalid", "`name` must be a non-empty string")
        return os.path.join(self.root, encode(name))

    def load(self, name):
        try:
            with open(self.path(name), "r", encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, name, record):
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(name))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def check(self, name, expected):
        current = self.load(name)
        have = current["version"] if current else 0
        if not isinstance(expected, int) or expected != have:
            raise Refused(
                "conflict",
                "`%s` is at version %d, not %s" % (name, have, expected),
            )
        return current

    # The requests.

    def hello(self, req):
        return {
            "protocol": PROTOCOL,
            "capabilities": ["list", "read", "write", "delete"],
            "name_rules": {"max_bytes": 1024},
            "max_value_bytes": 1 << 20,
        }

    def list(self, req):
        prefix = req.get("prefix") or ""
        names = sorted(
            n
            for n in (decode(f) for f in os.listdir(self.root) if not f.startswith(".tmp-"))
            if n is not None and n.startswith(prefix)
        )
        cursor = req.get("cursor")
        if cursor is not None:
            names = [n for n in names if n > cursor]
        page = names[:PAGE]
        secrets = []
        for n in page:
            r = self.load(n)
            if r is not None:
                secrets.append({"name": n, "version": r["version"], "marks": r["marks"]})
        nxt = page[-1] if len(names) > PAGE else None
        return {"secrets": secrets, "next": nxt}

    def read(self, req):
        r = self.load(req.get("name"))
        if r is None:
            raise Refused("not_found", "no such secret")
        return {"value": r["value"], "version": r["version"]}

    def write(self, req):
        name = req.get("name")
        current = self.check(name, req.get("expected_version"))
        marks = req.get("marks") or {}
        if not isinstance(marks, dict) or not all(isinstance(v, str) for v in marks.values()):
            raise Refused("invalid", "`marks` must be an object of strings")
        if "value" not in req:
            if current is None:
                raise Refused("not_found", "no such secret")
            current["marks"] = marks
            self.save(name, current)
            return {"version": current["version"]}
        value = req["value"]
        if not isinstance(value, dict):
            raise Refused("invalid", "`value` must be a JSON object")
        if self.fail_on and self.fail_on in name:
            raise Refused("invalid", "injected failure")
        version = (current["version"] if current else 0) + 1
        self.save(name, {"value": value, "marks": marks, "version": version})
        return {"version": version}

    def delete(self, req):
        name = req.get("name")
        self.check(name, req.get("expected_version"))
        if self.fail_on and self.fail_on in name:
            raise Refused("invalid", "injected failure")
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            pass
        return {}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="the directory that holds the secrets")
    p.add_argument("--fail-on", help=argparse.SUPPRESS)
    args = p.parse_args()
    store = Store(args.root, args.fail_on)
    ops = {
        "hello": store.hello,
        "list": store.list,
        "read": store.read,
        "write": store.write,
        "delete": store.delete,
    }
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            # Not a request: nothing can be answered (there is no id). Never echo the line.
            print("dir_store: a line that is not JSON was ignored", file=sys.stderr)
            continue
        rid = req.get("id")
        op = req.get("op")
        if op == "bye":
            print(json.dumps({"id": rid, "ok": {}}), flush=True)
            return
        try:
            if op not in ops:
                raise Refused("invalid", "unknown op `%s`" % op)
            answer = {"id": rid, "ok": ops[op](req)}
        except Refused as e:
            answer = {"id": rid, "error": {"code": e.code, "message": e.message}}
        except OSError as e:
            answer = {
                "id": rid,
                "error": {"code": "unavailable", "message": "%s: %s" % (type(e).__name__, e.strerror)},
            }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
