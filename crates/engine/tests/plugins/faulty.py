#!/usr/bin/env python3
"""A plugin that misbehaves on purpose (target_plugin.rs): the example dir_store plugin, with
one fault.

    faulty.py --root DIR --fault KIND[:OP]

KIND: version2 (hello answers protocol 2), no-delete (hello lacks the `delete` capability),
crash (exits with status 3 on OP), hang (never answers OP), garbage (answers OP with a line
that is not JSON), wrong-id (answers OP with another id), huge (answers OP with an endless
line), env-dump:FILE (writes its argv and environment names to FILE at hello), chatty (writes
a line to stderr for every request).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "examples", "plugins"))
import dir_store  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--fault", required=True)
    args = p.parse_args()
    kind, _, arg = args.fault.partition(":")
    store = dir_store.Store(args.root)
    ops = {"hello": store.hello, "list": store.list, "read": store.read, "write": store.write, "delete": store.delete}
    for line in sys.stdin:
        req = json.loads(line)
        rid, op = req.get("id"), req.get("op")
        if kind == "chatty":
            print("faulty: got a request", op, file=sys.stderr, flush=True)
        if op == "bye":
            print(json.dumps({"id": rid, "ok": {}}), flush=True)
            return
        if op == arg:
            if kind == "crash":
                print("faulty: crashing", file=sys.stderr, flush=True)
                sys.exit(3)
            if kind == "hang":
                time.sleep(3600)
            if kind == "garbage":
                print("this is not json", flush=True)
                continue
            if kind == "wrong-id":
                print(json.dumps({"id": rid + 1, "ok": {}}), flush=True)
                continue
            if kind == "huge":
                chunk = "x" * (1 << 20)
                for _ in range(1 << 10):
                    sys.stdout.write(chunk)
                sys.stdout.flush()
                time.sleep(3600)
        try:
            ok = ops[op](req)
            if op == "hello":
                if kind == "version2":
                    ok["protocol"] = 2
                if kind == "no-delete":
                    ok["capabilities"] = ["list", "read", "write"]
                if kind == "env-dump":
                    with open(arg, "w") as f:
                        json.dump({"argv": sys.argv, "env": sorted(os.environ)}, f)
            answer = {"id": rid, "ok": ok}
        except dir_store.Refused as e:
            answer = {"id": rid, "error": {"code": e.code, "message": e.message}}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
