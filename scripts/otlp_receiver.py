#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for tests (no collector is packaged for these machines).

    otlp_receiver.py PORT

Listens on 127.0.0.1:PORT. `POST /v1/traces` takes an OTLP/HTTP export (protobuf, optionally
gzip-compressed), decodes it with the official protobuf definitions (PyPI
`opentelemetry-proto`) and keeps every span; a body that does not decode is answered 400 and
counted as rejected. `GET /spans` returns what arrived as JSON:

    {"rejected": 0, "spans": [{"name", "trace_id", "span_id", "parent_span_id", "kind",
      "start_unix_nano", "end_unix_nano", "status_code", "attributes": {..},
      "resource": {..}, "scope": "..."}, ...]}

`DELETE /spans` forgets them. `GET /health` answers 200.
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

LOCK = threading.Lock()
SPANS = []
REJECTED = [0]


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def decode(body):
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "kind": s.kind,
                        "start_unix_nano": s.start_time_unix_nano,
                        "end_unix_nano": s.end_time_unix_nano,
                        "status_code": s.status.code,
                        "attributes": attrs(s.attributes),
                        "resource": resource,
                        "scope": ss.scope.name,
                    }
                )
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path != "/v1/traces":
            return self.reply(404, b"only /v1/traces", "text/plain")
        try:
            if self.headers.get("Content-Encoding", "") == "gzip":
                body = gzip.decompress(body)
            spans = decode(body)
        except (DecodeError, OSError, ValueError) as e:
            with LOCK:
                REJECTED[0] += 1
            return self.reply(400, str(e).encode(), "text/plain")
        with LOCK:
            SPANS.extend(spans)
        self.reply(
            200,
            ExportTraceServiceResponse().SerializeToString(),
            "application/x-protobuf",
        )

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, b"ok", "text/plain")
        if self.path == "/spans":
            with LOCK:
                doc = {"rejected": REJECTED[0], "spans": list(SPANS)}
            return self.reply(200, json.dumps(doc).encode(), "application/json")
        self.reply(404, b"not found", "text/plain")

    def do_DELETE(self):
        if self.path == "/spans":
            with LOCK:
                SPANS.clear()
                REJECTED[0] = 0
            return self.reply(200, b"{}", "application/json")
        self.reply(404, b"not found", "text/plain")


def main():
    port = int(sys.argv[1])
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
