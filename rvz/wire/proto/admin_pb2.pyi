from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelsRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("use_case", "name", "version", "role", "started_role", "worker_id", "pid", "host", "last_heartbeat_age_s", "live", "scores_per_s", "error_rate", "latency_p50_ms", "latency_p99_ms", "on_time_pct", "times_chosen", "divergence", "window_s", "scores_total", "missed_total", "restarts", "replicas", "shared", "outstanding")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STARTED_ROLE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_S_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    SCORES_PER_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_PCT_FIELD_NUMBER: _ClassVar[int]
    TIMES_CHOSEN_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    SCORES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MISSED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    name: str
    version: str
    role: str
    started_role: str
    worker_id: str
    pid: int
    host: str
    last_heartbeat_age_s: float
    live: bool
    scores_per_s: float
    error_rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    on_time_pct: float
    times_chosen: int
    divergence: float
    window_s: float
    scores_total: int
    missed_total: int
    restarts: int
    replicas: int
    shared: bool
    outstanding: int
    def __init__(self, use_case: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., started_role: _Optional[str] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., host: _Optional[str] = ..., last_heartbeat_age_s: _Optional[float] = ..., live: _Optional[bool] = ..., scores_per_s: _Optional[float] = ..., error_rate: _Optional[float] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., on_time_pct: _Optional[float] = ..., times_chosen: _Optional[int] = ..., divergence: _Optional[float] = ..., window_s: _Optional[float] = ..., scores_total: _Optional[int] = ..., missed_total: _Optional[int] = ..., restarts: _Optional[int] = ..., replicas: _Optional[int] = ..., shared: _Optional[bool] = ..., outstanding: _Optional[int] = ...) -> None: ...

class ModelTotals(_message.Message):
    __slots__ = ("use_case", "name", "version", "replicas", "scores_per_s", "scores_total", "missed_total", "times_chosen", "latency_p50_ms", "latency_p99_ms")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SCORES_PER_S_FIELD_NUMBER: _ClassVar[int]
    SCORES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MISSED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TIMES_CHOSEN_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    name: str
    version: str
    replicas: int
    scores_per_s: float
    scores_total: int
    missed_total: int
    times_chosen: int
    latency_p50_ms: float
    latency_p99_ms: float
    def __init__(self, use_case: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., replicas: _Optional[int] = ..., scores_per_s: _Optional[float] = ..., scores_total: _Optional[int] = ..., missed_total: _Optional[int] = ..., times_chosen: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "last_changes", "totals")
    class LastChangesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AuditRecord
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AuditRecord, _Mapping]] = ...) -> None: ...
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANGES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    last_changes: _containers.MessageMap[str, AuditRecord]
    totals: _containers.RepeatedCompositeFieldContainer[ModelTotals]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., last_changes: _Optional[_Mapping[str, AuditRecord]] = ..., totals: _Optional[_Iterable[_Union[ModelTotals, _Mapping]]] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("unix_ns", "who", "action", "use_case", "old", "new", "policy_version")
    UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    unix_ns: int
    who: str
    action: str
    use_case: str
    old: str
    new: str
    policy_version: int
    def __init__(self, unix_ns: _Optional[int] = ..., who: _Optional[str] = ..., action: _Optional[str] = ..., use_case: _Optional[str] = ..., old: _Optional[str] = ..., new: _Optional[str] = ..., policy_version: _Optional[int] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("until_ms", "accept")
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    until_ms: float
    accept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, until_ms: _Optional[float] = ..., accept: _Optional[_Iterable[str]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("deadline_ms", "on_timeout", "default_output", "schedule", "early_score_ms")
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    EARLY_SCORE_MS_FIELD_NUMBER: _ClassVar[int]
    deadline_ms: float
    on_timeout: str
    default_output: _struct_pb2.Value
    schedule: _containers.RepeatedCompositeFieldContainer[Window]
    early_score_ms: float
    def __init__(self, deadline_ms: _Optional[float] = ..., on_timeout: _Optional[str] = ..., default_output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., schedule: _Optional[_Iterable[_Union[Window, _Mapping]]] = ..., early_score_ms: _Optional[float] = ...) -> None: ...

class PolicyState(_message.Message):
    __slots__ = ("use_case", "version", "policy", "last_change")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANGE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    version: int
    policy: Policy
    last_change: AuditRecord
    def __init__(self, use_case: _Optional[str] = ..., version: _Optional[int] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., last_change: _Optional[_Union[AuditRecord, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("use_case", "policy", "expected_version")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    policy: Policy
    expected_version: int
    def __init__(self, use_case: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ResetPolicyRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("use_case", "model_name")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    model_name: str
    def __init__(self, use_case: _Optional[str] = ..., model_name: _Optional[str] = ...) -> None: ...

class PromoteResponse(_message.Message):
    __slots__ = ("use_case", "champion", "demoted")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    DEMOTED_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    champion: str
    demoted: str
    def __init__(self, use_case: _Optional[str] = ..., champion: _Optional[str] = ..., demoted: _Optional[str] = ...) -> None: ...
