"""The policy history log (DATA_DIR/policies, and DATA_DIR/policies.i of rendezvous i of several; records
``rvz.v1.PolicyChange``): every change the Admin
API made, with the policy and roles in force from then on, so `rvz report` can judge each request by
the policy that decided it rather than by the one in force when the report runs.

Written by the rendezvous (``AdminState``), read by `rvz report` (``rvz.report.history``). Changes are
made by people, a few a day: each one opens the log, appends and closes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rvz.errors import LogError
from rvz.log.naming import log_name
from rvz.log.writer import LogWriter
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)

LOG_NAME = "policies"
RECORD_TYPE = "rvz.v1.PolicyChange"


def record_change(data_dir: str | os.PathLike[str], change: envelope_pb2.PolicyChange, rendezvous: str = "") -> None:
    """Append ``change`` durably to the history of the rendezvous named ``rendezvous`` (``rvz.log.naming``:
    each of several writes its own; the readers show a change once). A log that cannot be written costs the
    report its history, not the change (already in force and saved): it is logged, never raised."""
    try:
        with LogWriter(Path(data_dir) / log_name(LOG_NAME, rendezvous), RECORD_TYPE) as log:
            log.append(change.SerializeToString())
    except (LogError, OSError) as e:
        logger.error("use case %r: policy version %d is in force but not in the policy history (%s); `rvz report` "
                     "will judge its requests by the config's schedule", change.use_case, change.version, e)
