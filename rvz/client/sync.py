"""``rvz.Client``: blocking calls to one frontend (see ``rvz.client``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from rvz.client.channel import Stubs, auth_metadata, open_channel
from rvz.client.types import (
    Answer,
    ModelList,
    PolicyState,
    Promotion,
    answer_of,
    models_of,
    policy_message,
    policy_state_of,
    score_request,
    truth_batches,
    truth_message,
)
from rvz.errors import CallFailed
from rvz.feedback.log import IMPORT_BATCH
from rvz.security.tls import ClientTls
from rvz.wire.proto import admin_pb2


class Client:
    """Calls to the frontend at ``target`` (HOST:PORT) over one channel; a context manager, or ``close()``.

    ``timeout_s`` is each call's gRPC deadline (None: none). An empty ``use_case`` is the frontend's
    frontend.default_use_case (for ``models``: every use case). Every call raises ``CallFailed``.
    ``tls``: verify the frontend (and prove who we are, for mTLS) instead of plaintext; ``token``: the Admin
    API's bearer token (``NAME:SECRET``, see docs/security.md), which changes need, or ``token_file``: a
    token file (DATA_DIR/keys/admin.token, made by `rvz up`) whose first token is sent.
    Thread-safe (gRPC channels are).
    """

    def __init__(self, target: str, timeout_s: float | None = 10.0, *, tls: ClientTls | None = None,
                 token: str = "", token_file: str | Path | None = None) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = open_channel(target, tls)
        self._metadata = auth_metadata(token, token_file)
        stubs = Stubs.of(self._channel)
        self._scoring, self._feedback, self._admin, self._health = stubs.scoring, stubs.feedback, stubs.admin, \
            stubs.health

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; idempotent."""
        self._channel.close()

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise CallFailed(e.code(), e.details() or "") from None

    # --- Scoring and Feedback -------------------------------------------------------------------

    def score(self, features: Mapping[str, Any], use_case: str = "") -> Answer:
        """Score ``features`` (JSON-like values by feature name); the answer the rendezvous chose."""
        return answer_of(self._call(self._scoring.Score, score_request(features, use_case)))

    def feedback(self, request_id: str, truth: Any) -> None:
        """Record the true outcome of the request ``request_id`` (the last truth recorded wins)."""
        self._call(self._feedback.Record, truth_message(request_id, truth))

    def feedback_many(self, truths: Iterable[tuple[str, Any]]) -> int:
        """Record (request_id, truth) pairs, a batch per call; returns how many were recorded."""
        return sum(self._call(self._feedback.RecordMany, batch).recorded
                   for batch in truth_batches(truths, IMPORT_BATCH))

    def health(self, service: str = "") -> str:
        """The health status name of ``service`` ("" = the whole server, else a use case): SERVING, ..."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    # --- Admin ----------------------------------------------------------------------------------

    def models(self, use_case: str = "") -> ModelList:
        """Every model worker seen (of ``use_case``, or of every use case), in a stable order."""
        return models_of(self._call(self._admin.ListModels, admin_pb2.ListModelsRequest(use_case=use_case)))

    def get_policy(self, use_case: str = "") -> PolicyState:
        return policy_state_of(self._call(self._admin.GetPolicy, admin_pb2.GetPolicyRequest(use_case=use_case)))

    def set_policy(self, policy: Mapping[str, Any], use_case: str = "", expected_version: int = 0) -> PolicyState:
        """Put ``policy`` (a `[rendezvous]` table) in force; with ``expected_version``, only if the policy in
        force has that version. Raises ``ConfigError`` for a table of the wrong shape."""
        request = admin_pb2.SetPolicyRequest(use_case=use_case, policy=policy_message(policy),
                                             expected_version=expected_version)
        return policy_state_of(self._call(self._admin.SetPolicy, request))

    def reset_policy(self, use_case: str = "") -> PolicyState:
        return policy_state_of(self._call(self._admin.ResetPolicy,
                                          admin_pb2.ResetPolicyRequest(use_case=use_case)))

    def promote(self, model_name: str, use_case: str = "") -> Promotion:
        reply = self._call(self._admin.Promote, admin_pb2.PromoteRequest(use_case=use_case, model_name=model_name))
        return Promotion(reply.use_case, reply.champion, reply.demoted)
