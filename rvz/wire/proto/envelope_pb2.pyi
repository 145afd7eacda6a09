from google.protobuf import struct_pb2 as _struct_pb2
from rvz.wire.proto import admin_pb2 as _admin_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestEnvelope(_message.Message):
    __slots__ = ("request_id", "use_case", "request", "received_unix_ns", "deadline_unix_ns", "return_address", "trace_context", "rendezvous")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    RETURN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RENDEZVOUS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    use_case: str
    request: bytes
    received_unix_ns: int
    deadline_unix_ns: int
    return_address: bytes
    trace_context: _containers.ScalarMap[str, str]
    rendezvous: int
    def __init__(self, request_id: _Optional[str] = ..., use_case: _Optional[str] = ..., request: _Optional[bytes] = ..., received_unix_ns: _Optional[int] = ..., deadline_unix_ns: _Optional[int] = ..., return_address: _Optional[bytes] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., rendezvous: _Optional[int] = ...) -> None: ...

class ScoreEnvelope(_message.Message):
    __slots__ = ("request_id", "use_case", "model_name", "model_version", "role", "output", "error", "error_type", "started_unix_ns", "finished_unix_ns", "worker_id", "replayed", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    use_case: str
    model_name: str
    model_version: str
    role: str
    output: _struct_pb2.Value
    error: str
    error_type: str
    started_unix_ns: int
    finished_unix_ns: int
    worker_id: str
    replayed: bool
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., use_case: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., role: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ..., error_type: _Optional[str] = ..., started_unix_ns: _Optional[int] = ..., finished_unix_ns: _Optional[int] = ..., worker_id: _Optional[str] = ..., replayed: _Optional[bool] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScoreRecord(_message.Message):
    __slots__ = ("score", "received_unix_ns", "late", "orphan")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_FIELD_NUMBER: _ClassVar[int]
    score: ScoreEnvelope
    received_unix_ns: int
    late: bool
    orphan: bool
    def __init__(self, score: _Optional[_Union[ScoreEnvelope, _Mapping]] = ..., received_unix_ns: _Optional[int] = ..., late: _Optional[bool] = ..., orphan: _Optional[bool] = ...) -> None: ...

class ResultEnvelope(_message.Message):
    __slots__ = ("request_id", "use_case", "status_code", "status_message", "response", "rule", "elapsed_ms", "decided_unix_ns", "model_name", "model_version", "role", "received_unix_ns", "deadline_unix_ns", "policy_version", "outcome")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[ResultEnvelope.Outcome]
        ANSWERED: _ClassVar[ResultEnvelope.Outcome]
        DEFAULT: _ClassVar[ResultEnvelope.Outcome]
        TIMED_OUT: _ClassVar[ResultEnvelope.Outcome]
        ALL_FAILED: _ClassVar[ResultEnvelope.Outcome]
    OUTCOME_UNSPECIFIED: ResultEnvelope.Outcome
    ANSWERED: ResultEnvelope.Outcome
    DEFAULT: ResultEnvelope.Outcome
    TIMED_OUT: ResultEnvelope.Outcome
    ALL_FAILED: ResultEnvelope.Outcome
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    use_case: str
    status_code: int
    status_message: str
    response: bytes
    rule: str
    elapsed_ms: float
    decided_unix_ns: int
    model_name: str
    model_version: str
    role: str
    received_unix_ns: int
    deadline_unix_ns: int
    policy_version: int
    outcome: ResultEnvelope.Outcome
    def __init__(self, request_id: _Optional[str] = ..., use_case: _Optional[str] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ..., response: _Optional[bytes] = ..., rule: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., decided_unix_ns: _Optional[int] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., role: _Optional[str] = ..., received_unix_ns: _Optional[int] = ..., deadline_unix_ns: _Optional[int] = ..., policy_version: _Optional[int] = ..., outcome: _Optional[_Union[ResultEnvelope.Outcome, str]] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("kind", "frontend_id", "sent_unix_ns", "model", "deadlines_ms", "default_first_window", "first_windows", "next_sequence", "use_cases", "state_digest", "state_changed_unix_ns")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Control.Kind]
        PROBE: _ClassVar[Control.Kind]
        ANNOUNCE: _ClassVar[Control.Kind]
        RENDEZVOUS_READY: _ClassVar[Control.Kind]
    KIND_UNSPECIFIED: Control.Kind
    PROBE: Control.Kind
    ANNOUNCE: Control.Kind
    RENDEZVOUS_READY: Control.Kind
    class DeadlinesMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FirstWindowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Accept
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Accept, _Mapping]] = ...) -> None: ...
    class NextSequenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    FRONTEND_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEADLINES_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIRST_WINDOW_FIELD_NUMBER: _ClassVar[int]
    FIRST_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    USE_CASES_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    kind: Control.Kind
    frontend_id: bytes
    sent_unix_ns: int
    model: ModelInfo
    deadlines_ms: _containers.ScalarMap[str, float]
    default_first_window: Accept
    first_windows: _containers.MessageMap[str, Accept]
    next_sequence: _containers.ScalarMap[str, int]
    use_cases: _containers.RepeatedScalarFieldContainer[str]
    state_digest: str
    state_changed_unix_ns: int
    def __init__(self, kind: _Optional[_Union[Control.Kind, str]] = ..., frontend_id: _Optional[bytes] = ..., sent_unix_ns: _Optional[int] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., deadlines_ms: _Optional[_Mapping[str, float]] = ..., default_first_window: _Optional[_Union[Accept, _Mapping]] = ..., first_windows: _Optional[_Mapping[str, Accept]] = ..., next_sequence: _Optional[_Mapping[str, int]] = ..., use_cases: _Optional[_Iterable[str]] = ..., state_digest: _Optional[str] = ..., state_changed_unix_ns: _Optional[int] = ...) -> None: ...

class Accept(_message.Message):
    __slots__ = ("accept",)
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    accept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accept: _Optional[_Iterable[str]] = ...) -> None: ...

class AdminCall(_message.Message):
    __slots__ = ("call_id", "caller", "list_models", "get_policy", "set_policy", "promote", "reset_policy")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    LIST_MODELS_FIELD_NUMBER: _ClassVar[int]
    GET_POLICY_FIELD_NUMBER: _ClassVar[int]
    SET_POLICY_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    RESET_POLICY_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    caller: str
    list_models: _admin_pb2.ListModelsRequest
    get_policy: _admin_pb2.GetPolicyRequest
    set_policy: _admin_pb2.SetPolicyRequest
    promote: _admin_pb2.PromoteRequest
    reset_policy: _admin_pb2.ResetPolicyRequest
    def __init__(self, call_id: _Optional[int] = ..., caller: _Optional[str] = ..., list_models: _Optional[_Union[_admin_pb2.ListModelsRequest, _Mapping]] = ..., get_policy: _Optional[_Union[_admin_pb2.GetPolicyRequest, _Mapping]] = ..., set_policy: _Optional[_Union[_admin_pb2.SetPolicyRequest, _Mapping]] = ..., promote: _Optional[_Union[_admin_pb2.PromoteRequest, _Mapping]] = ..., reset_policy: _Optional[_Union[_admin_pb2.ResetPolicyRequest, _Mapping]] = ...) -> None: ...

class AdminReply(_message.Message):
    __slots__ = ("call_id", "status_code", "status_message", "models", "policy", "promoted", "state_digest", "state_changed_unix_ns")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    status_code: int
    status_message: str
    models: _admin_pb2.ListModelsResponse
    policy: _admin_pb2.PolicyState
    promoted: _admin_pb2.PromoteResponse
    state_digest: str
    state_changed_unix_ns: int
    def __init__(self, call_id: _Optional[int] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ..., models: _Optional[_Union[_admin_pb2.ListModelsResponse, _Mapping]] = ..., policy: _Optional[_Union[_admin_pb2.PolicyState, _Mapping]] = ..., promoted: _Optional[_Union[_admin_pb2.PromoteResponse, _Mapping]] = ..., state_digest: _Optional[str] = ..., state_changed_unix_ns: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("use_case", "name", "version", "role", "worker_id", "pid", "host", "features", "missed", "restarts", "capacity")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    name: str
    version: str
    role: str
    worker_id: str
    pid: int
    host: str
    features: _containers.RepeatedCompositeFieldContainer[FeatureSpec]
    missed: int
    restarts: int
    capacity: int
    def __init__(self, use_case: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., host: _Optional[str] = ..., features: _Optional[_Iterable[_Union[FeatureSpec, _Mapping]]] = ..., missed: _Optional[int] = ..., restarts: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class FeatureSpec(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class FeedbackRecord(_message.Message):
    __slots__ = ("request_id", "truth", "received_unix_ns")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRUTH_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    truth: _struct_pb2.Value
    received_unix_ns: int
    def __init__(self, request_id: _Optional[str] = ..., truth: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., received_unix_ns: _Optional[int] = ...) -> None: ...

class PolicyChange(_message.Message):
    __slots__ = ("use_case", "changed_unix_ns", "change", "version", "policy", "roles")
    class RolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    changed_unix_ns: int
    change: str
    version: int
    policy: _admin_pb2.Policy
    roles: _containers.ScalarMap[str, str]
    def __init__(self, use_case: _Optional[str] = ..., changed_unix_ns: _Optional[int] = ..., change: _Optional[str] = ..., version: _Optional[int] = ..., policy: _Optional[_Union[_admin_pb2.Policy, _Mapping]] = ..., roles: _Optional[_Mapping[str, str]] = ...) -> None: ...
