"""A model whose module takes RVZ_TEST_IMPORT_S seconds (default 60) to import: a worker still loading.

It holds nothing while it sleeps (no socket, no lock): only the signal that stops its process ends it.
"""

from __future__ import annotations

import os
import time
from typing import Any

time.sleep(float(os.environ.get("RVZ_TEST_IMPORT_S", "60")))


def echo(features: dict[str, Any]) -> dict[str, Any]:
    return features
