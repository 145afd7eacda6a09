"""A frontend's name: which of a deployment's frontends it is, and so which logs it writes.

The unnamed frontend (the only one of a deployment with one) writes ``DATA/requests`` and ``DATA/feedback``;
a frontend named NAME writes ``DATA/requests.NAME`` and ``DATA/feedback.NAME``: every log has one writer,
and the readers (`rvz report`, `rvz replay`, `rvz log cat`) read them all (``rvz.log.dirs``).
"""

from __future__ import annotations

from rvz.log.naming import WRITER_NAME


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a frontend's name ("" is the unnamed frontend), or None."""
    if not name or WRITER_NAME.fullmatch(name):
        return None
    return f"a frontend's name is 1 to 64 letters, digits, '-' or '_' (it names its logs), got {name!r}"
