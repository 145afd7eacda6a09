"""The frontend's side of the Admin API: forwards each call to the rendezvous, which owns the state."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc

from rvz.errors import AdminError, status_from_value
from rvz.frontend.publisher import Dispatcher
from rvz.security.admin_auth import AdminAuth
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, envelope_pb2

ADMIN_TIMEOUT_S = 5.0
M = TypeVar("M", admin_pb2.GetPolicyRequest, admin_pb2.SetPolicyRequest, admin_pb2.ResetPolicyRequest,
            admin_pb2.PromoteRequest)


class AdminService(admin_pb2_grpc.AdminServicer):
    """Forwards each call that ``auth`` lets through, with who made it; a call that names no use case is
    about ``default_use_case`` (the frontend's)."""

    def __init__(self, dispatcher: Dispatcher, default_use_case: str, auth: AdminAuth) -> None:
        self.dispatcher = dispatcher
        self.default_use_case = default_use_case
        self.auth = auth

    async def ListModels(self, request: admin_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.ListModelsResponse:
        reply = await self._forward(envelope_pb2.AdminCall(list_models=request), context, change=False)
        return reply.models

    async def GetPolicy(self, request: admin_pb2.GetPolicyRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.PolicyState:
        reply = await self._forward(envelope_pb2.AdminCall(get_policy=self._named(request)), context, change=False)
        return reply.policy

    async def SetPolicy(self, request: admin_pb2.SetPolicyRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.PolicyState:
        reply = await self._forward(envelope_pb2.AdminCall(set_policy=self._named(request)), context, change=True)
        return reply.policy

    async def ResetPolicy(self, request: admin_pb2.ResetPolicyRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.PolicyState:
        reply = await self._forward(envelope_pb2.AdminCall(reset_policy=self._named(request)), context, change=True)
        return reply.policy

    async def Promote(self, request: admin_pb2.PromoteRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.PromoteResponse:
        reply = await self._forward(envelope_pb2.AdminCall(promote=self._named(request)), context, change=True)
        return reply.promoted

    def _named(self, request: M) -> M:
        if not request.use_case:
            request.use_case = self.default_use_case
        return request

    async def _forward(self, call: envelope_pb2.AdminCall, context: grpc.aio.ServicerContext[Any, Any],
                       change: bool) -> envelope_pb2.AdminReply:
        try:
            call.caller = self.auth.check(context.invocation_metadata() or (), context.auth_context(), change)
        except AdminError as e:
            await context.abort(e.code, str(e))
        reply = await self.dispatcher.call_admin(call, ADMIN_TIMEOUT_S)
        if reply is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the rendezvous did not answer within "
                                f"{ADMIN_TIMEOUT_S:g} s; is `rvz rendezvous` running?")
        assert reply is not None
        if reply.status_code:
            await context.abort(status_from_value(reply.status_code), reply.status_message)
        return reply
