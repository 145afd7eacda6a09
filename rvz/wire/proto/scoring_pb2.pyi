from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreRequest(_message.Message):
    __slots__ = ("use_case", "features")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    features: _struct_pb2.Struct
    def __init__(self, use_case: _Optional[str] = ..., features: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "output", "model_name", "model_version", "role", "is_default", "rule", "elapsed_ms", "use_case")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    output: _struct_pb2.Value
    model_name: str
    model_version: str
    role: str
    is_default: bool
    rule: str
    elapsed_ms: float
    use_case: str
    def __init__(self, request_id: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., role: _Optional[str] = ..., is_default: _Optional[bool] = ..., rule: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., use_case: _Optional[str] = ...) -> None: ...

class Truth(_message.Message):
    __slots__ = ("request_id", "truth")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRUTH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    truth: _struct_pb2.Value
    def __init__(self, request_id: _Optional[str] = ..., truth: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class TruthBatch(_message.Message):
    __slots__ = ("truths",)
    TRUTHS_FIELD_NUMBER: _ClassVar[int]
    truths: _containers.RepeatedCompositeFieldContainer[Truth]
    def __init__(self, truths: _Optional[_Iterable[_Union[Truth, _Mapping]]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...
