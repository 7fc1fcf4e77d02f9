from . import tts_pb2 as _tts_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_DEAD_LETTERED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_DEAD_LETTERED: JobState

class WatchLoadRequest(_message.Message):
    __slots__ = ("min_interval_ms", "max_interval_ms")
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    min_interval_ms: int
    max_interval_ms: int
    def __init__(self, min_interval_ms: _Optional[int] = ..., max_interval_ms: _Optional[int] = ...) -> None: ...

class LoadReport(_message.Message):
    __slots__ = ("queue_depth", "in_flight", "queue_capacity", "draining", "queued_audio_seconds", "audio_seconds_per_second", "batch_queue_depth")
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BATCH_QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    queue_depth: int
    in_flight: int
    queue_capacity: int
    draining: bool
    queued_audio_seconds: float
    audio_seconds_per_second: float
    batch_queue_depth: int
    def __init__(self, queue_depth: _Optional[int] = ..., in_flight: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., draining: _Optional[bool] = ..., queued_audio_seconds: _Optional[float] = ..., audio_seconds_per_second: _Optional[float] = ..., batch_queue_depth: _Optional[int] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("text", "voice", "encoding", "sample_rate", "speed", "callback_url", "idempotency_key", "speaker", "text_format")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    encoding: _tts_pb2.AudioEncoding
    sample_rate: int
    speed: float
    callback_url: str
    idempotency_key: str
    speaker: str
    text_format: _tts_pb2.TextFormat
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., encoding: _Optional[_Union[_tts_pb2.AudioEncoding, str]] = ..., sample_rate: _Optional[int] = ..., speed: _Optional[float] = ..., callback_url: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., speaker: _Optional[str] = ..., text_format: _Optional[_Union[_tts_pb2.TextFormat, str]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "pieces_done", "pieces_total", "attempts", "error", "encoding", "created_ms", "updated_ms", "created")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PIECES_DONE_FIELD_NUMBER: _ClassVar[int]
    PIECES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    pieces_done: int
    pieces_total: int
    attempts: int
    error: str
    encoding: _tts_pb2.AudioEncoding
    created_ms: int
    updated_ms: int
    created: bool
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., pieces_done: _Optional[int] = ..., pieces_total: _Optional[int] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., encoding: _Optional[_Union[_tts_pb2.AudioEncoding, str]] = ..., created_ms: _Optional[int] = ..., updated_ms: _Optional[int] = ..., created: _Optional[bool] = ...) -> None: ...

class JobAudioChunk(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...
