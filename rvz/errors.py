"""Every error rvz raises on purpose, each with the gRPC status a caller sees.

``RvzError`` is the root: a caller that catches it catches everything rvz means to raise. The
frontend turns an ``RvzError`` into a gRPC status (``context.set_code`` and ``set_details``) in
exactly one place, ``rvz.frontend.server.Frontend.score``; the CLI turns one into a line on stderr
and an exit code (``rvz.cli.options.fail``). Every message says what to fix.
"""

from __future__ import annotations

from pathlib import Path

import grpc

_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def status_from_value(value: int) -> grpc.StatusCode:
    """The StatusCode of a numeric status carried in an envelope (UNKNOWN for a value gRPC does not define)."""
    return _STATUS_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


class RvzError(Exception):
    """Root of rvz's errors."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


# --- configuration and start-up -----------------------------------------------------------------


class ConfigError(RvzError):
    """The configuration file or a command-line option is invalid."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelLoadError(RvzError):
    """A model entry point cannot be imported or is not callable."""


class StartupFailed(RvzError):
    """A process of the deployment could not start; the message says which and why."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ChildExited(StartupFailed):
    """A child process exited before it was ready; ``returncode`` is its exit status (-N: killed by signal N)."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class NotReady(StartupFailed):
    """A child process, or the deployment, did not report ready within its start-up timeout."""


class Interrupted(StartupFailed):
    """A stop was asked for (SIGINT, SIGTERM) while waiting for something to start."""


class StreamError(RvzError):
    """A ZeroMQ endpoint cannot be bound or connected (address in use, bad path)."""

    code = grpc.StatusCode.UNAVAILABLE


# --- serving ------------------------------------------------------------------------------------


class InvalidRequest(RvzError):
    """The request cannot be scored as sent (missing or malformed features, bad use case name)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class UnknownUseCase(RvzError):
    """No model has ever announced the requested use case."""

    code = grpc.StatusCode.NOT_FOUND


class Unavailable(RvzError):
    """The pipeline cannot take the request now (rendezvous or models unreachable)."""

    code = grpc.StatusCode.UNAVAILABLE


class RequestTooLarge(RvzError):
    """A request is larger than limits.request_bytes: refused before it is parsed."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Overloaded(RvzError):
    """Too many requests in flight or the input stream is full; retry with backoff."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NoAnswer(RvzError):
    """The rendezvous ended the request without a score (deadline passed, every model failed)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class EncodeError(RvzError, TypeError):
    """A model returned something that cannot be sent as a google.protobuf.Value."""


class OutputTooLarge(RvzError):
    """A model's output is larger than ``limits.output_bytes``: it becomes an error score, not a log flood."""


class AdminError(RvzError):
    """An Admin call cannot be carried out as asked (its status says why: NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- logs ---------------------------------------------------------------------------------------


class LogError(RvzError):
    """A log directory cannot be used as asked (missing, locked, not writable, full)."""

    code = grpc.StatusCode.UNAVAILABLE


class LogLockedError(LogError):
    """Another writer holds the lock of the log directory."""


class CorruptRecord(LogError):
    """A record is torn or fails its checksum (raised only by strict reading)."""

    code = grpc.StatusCode.DATA_LOSS

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt record at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


# --- clients (the CLI, rvz.Client, the benchmark) -----------------------------------------------


class CallFailed(RvzError):
    """A call to a frontend ended with a non-OK status; ``code`` is that status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FeedbackRefused(RvzError):
    """A truth cannot be recorded as given (a malformed request id, no truth, a bad line of an import file)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ReplayFailed(RvzError):
    """`rvz replay` could not get its scores into the scores log (no requests, no rendezvous, another log)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class BenchError(RvzError):
    """The benchmark could not run (target unreachable, bad options, a load process failed, calls refused)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class FirstCallFailed(BenchError):
    """The call sent before the load failed: every call of the run would have (``status`` is its code)."""

    def __init__(self, status: grpc.StatusCode, details: str) -> None:
        super().__init__(f"the first call failed with {status.name}: {details}; nothing was measured")
        self.status = status
        self.details = details
