"""The public Python client of rvz: Score, Feedback and the Admin API, sync (``Client``) and asyncio
(``AsyncClient``), taking and returning plain Python values.

    import rvz

    with rvz.Client("127.0.0.1:50051") as client:
        answer = client.score({"petal_length": 1.4, "petal_width": 0.2}, use_case="iris")
        client.feedback(answer.request_id, "setosa")   # the truth, whenever it is known
        for model in client.models():
            print(model.name, model.role, model.latency_p99_ms)

Every call raises ``rvz.errors.CallFailed`` (with the gRPC ``code`` and the server's ``details``) when
the server refuses it or cannot be reached. See docs/python-client.md.
"""

from rvz.client.aio import AsyncClient
from rvz.client.sync import Client
from rvz.client.types import Answer, ModelStatus, PolicyState, Promotion

__all__ = ["Answer", "AsyncClient", "Client", "ModelStatus", "PolicyState", "Promotion"]
