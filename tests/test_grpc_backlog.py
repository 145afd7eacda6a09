"""rvz.grpc_backlog: gRPC core's count of calls that no handler has picked up yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

# Run in a child process: GrpcBacklog reads the one gRPC server of its process.
SCRIPT = textwrap.dedent("""
    import asyncio, time
    import grpc
    from rvz.grpc_backlog import GrpcBacklog

    async def main():
        release = asyncio.Event()
        held = []

        async def hold(data, context):
            held.append(data)
            await release.wait()
            return b"done"

        server = grpc.aio.server()
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "t.S", {"M": grpc.unary_unary_rpc_method_handler(hold)})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        backlog = GrpcBacklog()
        assert backlog.waiting(0) == 0, backlog.waiting(0)

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        method = channel.unary_unary("/t.S/M")
        futures = [method.future(b"x", timeout=30) for _ in range(5)]
        # The event loop is blocked here, so no handler can pick the calls up: they wait inside gRPC.
        deadline = time.monotonic() + 20
        while backlog.waiting(0) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("queued", backlog.waiting(0))
        # Let the handlers take them: then they are open, but held by handlers, not waiting.
        while len(held) < 5:
            await asyncio.sleep(0.01)
        print("held", backlog.waiting(5))
        release.set()
        answers = await asyncio.get_running_loop().run_in_executor(None, lambda: [f.result() for f in futures])
        print("answers", answers)
        print("after", backlog.calls_open())
        channel.close()
        await server.stop(None)

    asyncio.run(main())
""")


def test_calls_waiting_inside_grpc_are_counted() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["queued"] == "5"
    assert lines["held"] == "0"
    assert lines["answers"] == str([b"done"] * 5)
    assert lines["after"] in ("0", "1", "2", "3", "4", "5")  # core may still be closing the last calls
