"""rvz: a low-latency model server built on the rendezvous architecture.

``rvz.Client`` and ``rvz.AsyncClient`` (see ``rvz.client``) are imported on first use, so ``import rvz``
stays cheap for every process and command that does not call a frontend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rvz.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import rvz.client

        return getattr(rvz.client, name)
    raise AttributeError(f"module 'rvz' has no attribute {name!r}")
