"""``rvz.AsyncClient``: the calls of ``rvz.Client`` for asyncio code (see ``rvz.client``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from rvz.client.channel import Stubs, auth_metadata, open_aio_channel
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


class AsyncClient:
    """``rvz.Client``'s calls as coroutines; make it inside a running event loop, then ``async with`` it or
    ``await close()``. Every call raises ``CallFailed``."""

    def __init__(self, target: str, timeout_s: float | None = 10.0, *, tls: ClientTls | None = None,
                 token: str = "", token_file: str | Path | None = None) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = open_aio_channel(target, tls)
        self._metadata = auth_metadata(token, token_file)
        stubs = Stubs.of(self._channel)
        self._scoring, self._feedback, self._admin, self._health = stubs.scoring, stubs.feedback, stubs.admin, \
            stubs.health

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; idempotent."""
        await self._channel.close()

    async def _call(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise CallFailed(e.code(), e.details() or "") from None

    async def score(self, features: Mapping[str, Any], use_case: str = "") -> Answer:
        return answer_of(await self._call(self._scoring.Score, score_request(features, use_case)))

    async def feedback(self, request_id: str, truth: Any) -> None:
        await self._call(self._feedback.Record, truth_message(request_id, truth))

    async def feedback_many(self, truths: Iterable[tuple[str, Any]]) -> int:
        recorded = 0
        for batch in truth_batches(truths, IMPORT_BATCH):
            recorded += (await self._call(self._feedback.RecordMany, batch)).recorded
        return recorded

    async def health(self, service: str = "") -> str:
        reply = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def models(self, use_case: str = "") -> ModelList:
        return models_of(await self._call(self._admin.ListModels, admin_pb2.ListModelsRequest(use_case=use_case)))

    async def get_policy(self, use_case: str = "") -> PolicyState:
        return policy_state_of(await self._call(self._admin.GetPolicy,
                                                admin_pb2.GetPolicyRequest(use_case=use_case)))

    async def set_policy(self, policy: Mapping[str, Any], use_case: str = "",
                         expected_version: int = 0) -> PolicyState:
        request = admin_pb2.SetPolicyRequest(use_case=use_case, policy=policy_message(policy),
                                             expected_version=expected_version)
        return policy_state_of(await self._call(self._admin.SetPolicy, request))

    async def reset_policy(self, use_case: str = "") -> PolicyState:
        return policy_state_of(await self._call(self._admin.ResetPolicy,
                                                admin_pb2.ResetPolicyRequest(use_case=use_case)))

    async def promote(self, model_name: str, use_case: str = "") -> Promotion:
        reply = await self._call(self._admin.Promote,
                                 admin_pb2.PromoteRequest(use_case=use_case, model_name=model_name))
        return Promotion(reply.use_case, reply.champion, reply.demoted)
