"""Every error rvz raises on purpose, each with the gRPC status a caller sees.

The frontend turns an ``RvzError`` into ``context.abort(error.code, str(error))``
in exactly one place; the message always says what to fix.
"""

from __future__ import annotations

import grpc

_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def status_from_value(value: int) -> grpc.StatusCode:
    """The StatusCode of a numeric status carried in an envelope (UNKNOWN for a value gRPC does not define)."""
    return _STATUS_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


class RvzError(Exception):
    """Root of rvz's errors."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class ConfigError(RvzError):
    """The configuration file or a command-line option is invalid."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidRequest(RvzError):
    """The request cannot be scored as sent (missing or malformed features, bad use case name)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class UnknownUseCase(RvzError):
    """No model has ever announced the requested use case."""

    code = grpc.StatusCode.NOT_FOUND


class Unavailable(RvzError):
    """The pipeline cannot take the request now (rendezvous or models unreachable)."""

    code = grpc.StatusCode.UNAVAILABLE


class Overloaded(RvzError):
    """Too many requests in flight or the input stream is full; retry with backoff."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class StreamError(RvzError):
    """A ZeroMQ endpoint cannot be bound or connected (address in use, bad path)."""

    code = grpc.StatusCode.UNAVAILABLE


class NoAnswer(RvzError):
    """The rendezvous ended the request without a score (deadline passed, every model failed)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ModelLoadError(RvzError):
    """A model entry point cannot be imported or is not callable."""
