"""rvz.grpc_backlog: gRPC core's count of calls that no handler has picked up yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

# Run in a child process: GrpcBacklog reads the one gRPC server of its process. The event loop is blocked
# (time.sleep, on purpose) while calls arrive, so that they wait inside gRPC as under overload.
SCRIPT = textwrap.dedent("""
    import asyncio, sys, time
    import grpc
    from rvz.frontend.grpc_backlog import GrpcBacklog

    async def main(pending_limit):
        release = asyncio.Event()
        held = []

        async def hold(data, context):
            held.append(data)
            await release.wait()
            return b"done"

        options = [("grpc.server.max_pending_requests", pending_limit),
                   ("grpc.server.max_pending_requests_hard_limit", pending_limit)]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "t.S", {"M": grpc.unary_unary_rpc_method_handler(hold)})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        backlog = GrpcBacklog()
        print("idle", backlog.calls_open(), backlog.streams_open())

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        method = channel.unary_unary("/t.S/M")
        futures = [method.future(b"x", timeout=30) for _ in range(8)]
        deadline = time.monotonic() + 20
        while backlog.calls_open() < 8 and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop stays blocked: no handler can take a call
        print("queued", backlog.calls_open(), backlog.streams_open())
        while len(held) + sum(f.done() for f in futures) < 8:
            await asyncio.sleep(0.01)
        release.set()
        outcomes = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sorted(f.code().name for f in futures))
        print("outcomes", *outcomes)
        while backlog.streams_open():
            await asyncio.sleep(0.01)
        print("after", backlog.calls_open(), backlog.streams_open())
        channel.close()
        await server.stop(None)

    asyncio.run(main(int(sys.argv[1])))
""")


def run(pending_limit: int) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pending_limit)], capture_output=True, text=True,
                          timeout=50)
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}


def test_calls_waiting_inside_grpc_are_counted_by_both_counts() -> None:
    seen = run(pending_limit=1000)
    assert seen["idle"] == ["0", "0"]
    assert seen["queued"] == ["8", "8"]
    assert seen["outcomes"] == ["OK"] * 8
    assert seen["after"] == ["0", "0"]


def test_calls_grpc_cancelled_in_its_queue_stay_open_only_in_the_call_counts() -> None:
    # A queue limit of 2: gRPC cancels what arrives beyond it, as it does past 1000 under overload.
    seen = run(pending_limit=2)
    cancelled = seen["outcomes"].count("CANCELLED")
    assert cancelled > 0 and set(seen["outcomes"]) == {"OK", "CANCELLED"}, seen
    assert seen["after"] == [str(cancelled), "0"]  # why the frontend trusts the stream counts












