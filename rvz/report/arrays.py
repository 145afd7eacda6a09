"""The compact arrays `rvz report` holds the logs in: one element per score, integer codes for labels.

Built by ``rvz.report.data`` while the logs stream past (``Samples``, growable typed buffers) and frozen
into numpy arrays (``ModelArrays``).
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

# Bits of ModelArrays.flags.
ERROR = 1
LATE = 2
ORPHAN = 4  # flagged orphan by the rendezvous, or its request is not in the requests log
ON_TIME = 8  # arrived before the end of the first window that accepts the model
HAS_WINDOW = 16  # some window accepts the model (otherwise on-time is not defined)

NO_LABEL = -1

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]


class ModelKey(NamedTuple):
    use_case: str
    name: str
    version: str
    replayed: bool


class Labels:
    """Interned labels: arrays hold small integer codes instead of strings."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, label: str | None) -> int:
        if label is None:
            return NO_LABEL
        code = self.codes.get(label)
        if code is None:
            code = self.codes[label] = len(self.names)
            self.names.append(label)
        return code


@dataclass
class ModelArrays:
    """Every score of one model, one element per score record (numpy once loaded)."""

    key: ModelKey
    code: int
    roles: Counter[str] = field(default_factory=Counter)
    row: I32 = field(default_factory=lambda: np.empty(0, np.int32))  # request row, -1 if unknown
    arrival_ms: F32 = field(default_factory=lambda: np.empty(0, np.float32))  # NaN: replayed or unknown
    compute_ms: F32 = field(default_factory=lambda: np.empty(0, np.float32))
    flags: U8 = field(default_factory=lambda: np.empty(0, np.uint8))
    label: I32 = field(default_factory=lambda: np.empty(0, np.int32))
    number: F64 = field(default_factory=lambda: np.empty(0, np.float64))
    window_ms: F32 = field(default_factory=lambda: np.empty(0, np.float32))  # NaN: no window accepts it
    # Class probabilities, sparse: score index, label code, probability.
    probability_of: I32 = field(default_factory=lambda: np.empty(0, np.int32))
    probability_label: I32 = field(default_factory=lambda: np.empty(0, np.int32))
    probability: F64 = field(default_factory=lambda: np.empty(0, np.float64))
    # Successful outputs that gave neither a label nor a number, and what the first one was.
    unreadable: int = 0
    unreadable_shape: str = ""

    @property
    def role(self) -> str:
        """The role most of its scores carried (a promoted model has had two)."""
        return self.roles.most_common(1)[0][0] if self.roles else ""


class Samples:
    """Growable typed buffers for one model while the scores log streams past."""

    def __init__(self, key: ModelKey, code: int) -> None:
        self.key, self.code = key, code
        self.roles: Counter[str] = Counter()
        self.row = array("i")
        self.arrival_ms = array("f")
        self.compute_ms = array("f")
        self.flags = array("B")
        self.label = array("i")
        self.number = array("d")
        self.window_ms = array("f")
        self.probability_of = array("i")
        self.probability_label = array("i")
        self.probability = array("d")
        self.unreadable = 0
        self.unreadable_shape = ""

    def freeze(self) -> ModelArrays:
        return ModelArrays(
            self.key, self.code, self.roles,
            np.frombuffer(self.row, np.int32), np.frombuffer(self.arrival_ms, np.float32),
            np.frombuffer(self.compute_ms, np.float32), np.frombuffer(self.flags, np.uint8),
            np.frombuffer(self.label, np.int32), np.frombuffer(self.number, np.float64),
            np.frombuffer(self.window_ms, np.float32), np.frombuffer(self.probability_of, np.int32),
            np.frombuffer(self.probability_label, np.int32), np.frombuffer(self.probability, np.float64),
            self.unreadable, self.unreadable_shape,
        )
