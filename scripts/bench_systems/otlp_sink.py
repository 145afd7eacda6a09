"""A stand-in OpenTelemetry collector for the tracing runs: accepts OTLP/gRPC trace exports on loopback
and throws them away, counting calls and bytes (printed on stdout when stopped).

Exporting is part of what tracing costs rvz's processes; the sink's own CPU is not counted as rvz's.

    python -m bench_systems.otlp_sink --listen 127.0.0.1:0
"""

from __future__ import annotations

import argparse

import grpc

from bench_systems import serving

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
# Printed at exit: "otlp sink received N exports, B bytes".
TOTALS_PREFIX = "otlp sink received "


class Sink:
    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0

    async def export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.exports += 1
        self.bytes += len(request)
        return b""  # an empty ExportTraceServiceResponse: everything accepted


async def main(listen: str) -> None:
    sink = Sink()
    server = serving.new_server()
    handler = grpc.unary_unary_rpc_method_handler(sink.export)  # raw bytes: nothing is parsed
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": handler})])
    try:
        await serving.serve_until_signal(server, listen)
    finally:
        print(f"{TOTALS_PREFIX}{sink.exports} exports, {sink.bytes} bytes", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    serving.run(main(parser.parse_args().listen))
