"""A real OTLP receiver for the telemetry tests: OTLP/gRPC (traces, metrics, logs) and
OTLP/HTTP protobuf; appends one JSON line per export request to OUT.

Usage: python otlp_sink.py OUT.jsonl 127.0.0.1:GRPC_PORT HTTP_PORT
"""
import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls, logs_service_pb2_grpc as lsg
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms, metrics_service_pb2_grpc as msg
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts, trace_service_pb2_grpc as tsg

out_path, grpc_addr, http_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = threading.Lock()


def record(kind, req):
    with lock, open(out_path, "a") as f:
        f.write(json.dumps({"signal": kind, "request": MessageToDict(req)}) + "\n")


class T(tsg.TraceServiceServicer):
    def Export(self, req, ctx):
        record("traces", req)
        return ts.ExportTraceServiceResponse()


class M(msg.MetricsServiceServicer):
    def Export(self, req, ctx):
        record("metrics", req)
        return ms.ExportMetricsServiceResponse()


class L(lsg.LogsServiceServicer):
    def Export(self, req, ctx):
        record("logs", req)
        return ls.ExportLogsServiceResponse()


ROUTES = {
    "/v1/traces": ("traces", ts.ExportTraceServiceRequest, ts.ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", ms.ExportMetricsServiceRequest, ms.ExportMetricsServiceResponse),
    "/v1/logs": ("logs", ls.ExportLogsServiceRequest, ls.ExportLogsServiceResponse),
}


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        kind, req_t, resp_t = ROUTES[self.path]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        req = req_t()
        req.ParseFromString(body)
        record(kind, req)
        data = resp_t().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
tsg.add_TraceServiceServicer_to_server(T(), server)
msg.add_MetricsServiceServicer_to_server(M(), server)
lsg.add_LogsServiceServicer_to_server(L(), server)
server.add_insecure_port(grpc_addr)
server.start()
ThreadingHTTPServer(("127.0.0.1", http_port), H).serve_forever()
