#!/usr/bin/env python3
"""A minimal OTLP/HTTP traces receiver for tests/tests/otlp.rs.

Listens on 127.0.0.1 (an ephemeral port, printed as the first line of stdout), decodes every
POST body with the official OpenTelemetry protobuf definitions (PyPI `opentelemetry-proto`),
and appends what it decoded to --out as one JSON object per request:
{"n", "path", "content_type", "answer", "resource_spans": [{"resource": {...},
"spans": [{"trace_id", "span_id", "parent_span_id", "name", "kind", "start", "end", "flags",
"attributes": {...}, "events": [{"name", "time", "attributes"}], "dropped_events_count",
"status": {"code", "message"}}]}]}.

Answers 200 with an ExportTraceServiceResponse, except requests number --fail-from ..
--fail-from + --fail - 1 (1-based), which get --fail-status (503 by default; the first of them
with `Retry-After: 0`). With --tls-cert and --tls-key it speaks HTTPS. Exits by itself after
--lifetime seconds.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def span(s):
    return {
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent_span_id": s.parent_span_id.hex(),
        "trace_state": s.trace_state,
        "name": s.name,
        "kind": s.kind,
        "start": s.start_time_unix_nano,
        "end": s.end_time_unix_nano,
        "flags": s.flags,
        "attributes": attrs(s.attributes),
        "events": [
            {"name": e.name, "time": e.time_unix_nano, "attributes": attrs(e.attributes)}
            for e in s.events
        ],
        "dropped_events_count": s.dropped_events_count,
        "status": {"code": s.status.code, "message": s.status.message},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--fail-from", type=int, default=1)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=503)
    ap.add_argument("--lifetime", type=float, default=60)
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) ...")
    ap.add_argument("--tls-key", help="... and this key")
    a = ap.parse_args()
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            with lock:
                count[0] += 1
                n = count[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            failing = a.fail_from <= n < a.fail_from + a.fail
            answer = a.fail_status if failing else 200
            rec = {
                "n": n,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "answer": answer,
                "resource_spans": [
                    {
                        "resource": attrs(rs.resource.attributes),
                        "spans": [span(s) for ss in rs.scope_spans for s in ss.spans],
                    }
                    for rs in req.resource_spans
                ],
            }
            with lock, open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.send_response(answer)
            if failing and n == a.fail_from:
                self.send_header("Retry-After", "0")
            if answer == 200:
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_header("Content-Type", "application/x-protobuf")
            else:
                out = b"try again later" if answer != 400 else b"bad request"
                self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    if a.tls_cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    stop = threading.Timer(a.lifetime, srv.shutdown)
    stop.daemon = True
    stop.start()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
