from . import tts_pb2 as _tts_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class WatchLoadRequest(_message.Message):
    __slots__ = ("min_interval_ms", "max_interval_ms")
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    min_interval_ms: int
    max_interval_ms: int
    def __init__(self, min_interval_ms: _Optional[int] = ..., max_interval_ms: _Optional[int] = ...) -> None: ...

class LoadReport(_message.Message):
    __slots__ = ("queue_depth", "in_flight", "queue_capacity", "max_batch_size", "draining", "timestamp_ms", "voices")
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    VOICES_FIELD_NUMBER: _ClassVar[int]
    queue_depth: int
    in_flight: int
    queue_capacity: int
    max_batch_size: int
    draining: bool
    timestamp_ms: int
    voices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, queue_depth: _Optional[int] = ..., in_flight: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., draining: _Optional[bool] = ..., timestamp_ms: _Optional[int] = ..., voices: _Optional[_Iterable[str]] = ...) -> None: ...
