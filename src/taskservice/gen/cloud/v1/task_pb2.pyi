from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStatusEnum(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUED: _ClassVar[TaskStatusEnum]
    RUNNING: _ClassVar[TaskStatusEnum]
    FAILED: _ClassVar[TaskStatusEnum]
    SUCCEEDED: _ClassVar[TaskStatusEnum]
    UNKNOWN: _ClassVar[TaskStatusEnum]
    ALL: _ClassVar[TaskStatusEnum]
    RETRYING: _ClassVar[TaskStatusEnum]
    CANCELLED: _ClassVar[TaskStatusEnum]
    WAITING: _ClassVar[TaskStatusEnum]
QUEUED: TaskStatusEnum
RUNNING: TaskStatusEnum
FAILED: TaskStatusEnum
SUCCEEDED: TaskStatusEnum
UNKNOWN: TaskStatusEnum
ALL: TaskStatusEnum
RETRYING: TaskStatusEnum
CANCELLED: TaskStatusEnum
WAITING: TaskStatusEnum

class Payload(_message.Message):
    __slots__ = ("parameters",)
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.ScalarMap[str, str]
    def __init__(self, parameters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("name", "type", "payload", "description", "priority", "max_retries", "timeout_seconds", "idempotency_key", "delay_seconds", "queue", "limit_key", "run_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    payload: Payload
    description: str
    priority: int
    max_retries: int
    timeout_seconds: float
    idempotency_key: str
    delay_seconds: float
    queue: str
    limit_key: str
    run_at: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., description: _Optional[str] = ..., priority: _Optional[int] = ..., max_retries: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., idempotency_key: _Optional[str] = ..., delay_seconds: _Optional[float] = ..., queue: _Optional[str] = ..., limit_key: _Optional[str] = ..., run_at: _Optional[str] = ...) -> None: ...

class CreateTaskResponse(_message.Message):
    __slots__ = ("id", "existing", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    existing: bool
    id64: int
    def __init__(self, id: _Optional[int] = ..., existing: _Optional[bool] = ..., id64: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "name", "type", "status", "retries", "priority", "created_at", "payload", "description", "dependencies", "base_image", "entrypoint", "args", "env", "max_retries", "attempts", "updated_at", "timeout_seconds", "run_at", "worker_id", "idempotency_key", "id64", "exact_status", "truncated", "waiting_reason", "queue", "limit_key", "limit_scope", "schedule_id", "schedule_tick", "workflow_id", "step", "spawned_by", "trace_id", "last_worker_id", "last_attempt_seconds", "last_error", "resource_requests", "resource_limits", "service_account")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceRequestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceLimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    BASE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    EXACT_STATUS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TICK_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SPAWNED_BY_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    type: str
    status: TaskStatusEnum
    retries: int
    priority: int
    created_at: str
    payload: Payload
    description: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    base_image: str
    entrypoint: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    max_retries: int
    attempts: int
    updated_at: str
    timeout_seconds: float
    run_at: str
    worker_id: str
    idempotency_key: str
    id64: int
    exact_status: TaskStatusEnum
    truncated: bool
    waiting_reason: str
    queue: str
    limit_key: str
    limit_scope: str
    schedule_id: int
    schedule_tick: str
    workflow_id: int
    step: str
    spawned_by: int
    trace_id: str
    last_worker_id: str
    last_attempt_seconds: float
    last_error: str
    resource_requests: _containers.ScalarMap[str, str]
    resource_limits: _containers.ScalarMap[str, str]
    service_account: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., retries: _Optional[int] = ..., priority: _Optional[int] = ..., created_at: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., description: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., base_image: _Optional[str] = ..., entrypoint: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., max_retries: _Optional[int] = ..., attempts: _Optional[int] = ..., updated_at: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., run_at: _Optional[str] = ..., worker_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., id64: _Optional[int] = ..., exact_status: _Optional[_Union[TaskStatusEnum, str]] = ..., truncated: _Optional[bool] = ..., waiting_reason: _Optional[str] = ..., queue: _Optional[str] = ..., limit_key: _Optional[str] = ..., limit_scope: _Optional[str] = ..., schedule_id: _Optional[int] = ..., schedule_tick: _Optional[str] = ..., workflow_id: _Optional[int] = ..., step: _Optional[str] = ..., spawned_by: _Optional[int] = ..., trace_id: _Optional[str] = ..., last_worker_id: _Optional[str] = ..., last_attempt_seconds: _Optional[float] = ..., last_error: _Optional[str] = ..., resource_requests: _Optional[_Mapping[str, str]] = ..., resource_limits: _Optional[_Mapping[str, str]] = ..., service_account: _Optional[str] = ...) -> None: ...

class TaskHistory(_message.Message):
    __slots__ = ("id", "status", "created_at", "details", "id64", "exact_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    EXACT_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: int
    status: TaskStatusEnum
    created_at: str
    details: str
    id64: int
    exact_status: TaskStatusEnum
    def __init__(self, id: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., created_at: _Optional[str] = ..., details: _Optional[str] = ..., id64: _Optional[int] = ..., exact_status: _Optional[_Union[TaskStatusEnum, str]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("id", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    id64: int
    def __init__(self, id: _Optional[int] = ..., id64: _Optional[int] = ...) -> None: ...

class GetTaskHistoryRequest(_message.Message):
    __slots__ = ("id", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    id64: int
    def __init__(self, id: _Optional[int] = ..., id64: _Optional[int] = ...) -> None: ...

class GetTaskHistoryResponse(_message.Message):
    __slots__ = ("history",)
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedCompositeFieldContainer[TaskHistory]
    def __init__(self, history: _Optional[_Iterable[_Union[TaskHistory, _Mapping]]] = ...) -> None: ...

class UpdateTaskStatusRequest(_message.Message):
    __slots__ = ("id", "status", "message", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    status: TaskStatusEnum
    message: str
    id64: int
    def __init__(self, id: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., message: _Optional[str] = ..., id64: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("status_counts", "exact_status_counts")
    class StatusCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class ExactStatusCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    STATUS_COUNTS_FIELD_NUMBER: _ClassVar[int]
    EXACT_STATUS_COUNTS_FIELD_NUMBER: _ClassVar[int]
    status_counts: _containers.ScalarMap[int, int]
    exact_status_counts: _containers.ScalarMap[int, int]
    def __init__(self, status_counts: _Optional[_Mapping[int, int]] = ..., exact_status_counts: _Optional[_Mapping[int, int]] = ...) -> None: ...

class TaskListRequest(_message.Message):
    __slots__ = ("limit", "offset", "status", "type", "name_contains", "order_by")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    status: TaskStatusEnum
    type: str
    name_contains: str
    order_by: str
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., type: _Optional[str] = ..., name_contains: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class TaskList(_message.Message):
    __slots__ = ("tasks", "total", "omitted")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    OMITTED_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    total: int
    omitted: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., total: _Optional[int] = ..., omitted: _Optional[int] = ...) -> None: ...

class CreateTasksRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[CreateTaskRequest]
    def __init__(self, tasks: _Optional[_Iterable[_Union[CreateTaskRequest, _Mapping]]] = ...) -> None: ...

class CreateTasksResponse(_message.Message):
    __slots__ = ("ids", "ids64")
    IDS_FIELD_NUMBER: _ClassVar[int]
    IDS64_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    ids64: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., ids64: _Optional[_Iterable[int]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("id", "reason", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    id64: int
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ..., id64: _Optional[int] = ...) -> None: ...

class RetryTaskRequest(_message.Message):
    __slots__ = ("id", "reason", "id64")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    id64: int
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ..., id64: _Optional[int] = ...) -> None: ...

class ListTaskExecutionsRequest(_message.Message):
    __slots__ = ("id", "id64", "attempt")
    ID_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    id: int
    id64: int
    attempt: int
    def __init__(self, id: _Optional[int] = ..., id64: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskExecution(_message.Message):
    __slots__ = ("id", "task_id", "attempt", "worker_id", "started_at", "finished_at", "outcome", "error", "result", "duration_seconds", "started_after_seconds", "task_id64", "result_truncated", "traceback", "spawned")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID64_FIELD_NUMBER: _ClassVar[int]
    RESULT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    SPAWNED_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_id: int
    attempt: int
    worker_id: str
    started_at: str
    finished_at: str
    outcome: str
    error: str
    result: _struct_pb2.Value
    duration_seconds: float
    started_after_seconds: float
    task_id64: int
    result_truncated: bool
    traceback: str
    spawned: _containers.RepeatedCompositeFieldContainer[SpawnedTask]
    def __init__(self, id: _Optional[int] = ..., task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., started_after_seconds: _Optional[float] = ..., task_id64: _Optional[int] = ..., result_truncated: _Optional[bool] = ..., traceback: _Optional[str] = ..., spawned: _Optional[_Iterable[_Union[SpawnedTask, _Mapping]]] = ...) -> None: ...

class ListTaskExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[TaskExecution]
    def __init__(self, executions: _Optional[_Iterable[_Union[TaskExecution, _Mapping]]] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Worker(_message.Message):
    __slots__ = ("id", "host", "pid", "concurrency", "task_types", "started_at", "last_heartbeat_at", "stopped_at", "running", "alive", "kind", "queues", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    STOPPED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    host: str
    pid: int
    concurrency: int
    task_types: _containers.RepeatedScalarFieldContainer[str]
    started_at: str
    last_heartbeat_at: str
    stopped_at: str
    running: int
    alive: bool
    kind: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, id: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., concurrency: _Optional[int] = ..., task_types: _Optional[_Iterable[str]] = ..., started_at: _Optional[str] = ..., last_heartbeat_at: _Optional[str] = ..., stopped_at: _Optional[str] = ..., running: _Optional[int] = ..., alive: _Optional[bool] = ..., kind: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...

class GetTypeStatsRequest(_message.Message):
    __slots__ = ("range_seconds", "buckets")
    RANGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    range_seconds: int
    buckets: int
    def __init__(self, range_seconds: _Optional[int] = ..., buckets: _Optional[int] = ...) -> None: ...

class TypeStats(_message.Message):
    __slots__ = ("type", "finished", "succeeded", "failed", "failure_rate", "per_minute", "p50_seconds", "p95_seconds", "p95_wait_seconds")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    type: str
    finished: int
    succeeded: int
    failed: int
    failure_rate: float
    per_minute: float
    p50_seconds: float
    p95_seconds: float
    p95_wait_seconds: float
    def __init__(self, type: _Optional[str] = ..., finished: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., failure_rate: _Optional[float] = ..., per_minute: _Optional[float] = ..., p50_seconds: _Optional[float] = ..., p95_seconds: _Optional[float] = ..., p95_wait_seconds: _Optional[float] = ...) -> None: ...

class ThroughputBucket(_message.Message):
    __slots__ = ("start", "succeeded", "failed")
    START_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    start: str
    succeeded: int
    failed: int
    def __init__(self, start: _Optional[str] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class GetTypeStatsResponse(_message.Message):
    __slots__ = ("types", "buckets", "bucket_seconds", "until")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedCompositeFieldContainer[TypeStats]
    buckets: _containers.RepeatedCompositeFieldContainer[ThroughputBucket]
    bucket_seconds: float
    until: str
    def __init__(self, types: _Optional[_Iterable[_Union[TypeStats, _Mapping]]] = ..., buckets: _Optional[_Iterable[_Union[ThroughputBucket, _Mapping]]] = ..., bucket_seconds: _Optional[float] = ..., until: _Optional[str] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WorkerAttempt(_message.Message):
    __slots__ = ("id", "task_id", "task_name", "task_type", "attempt", "started_at", "finished_at", "outcome", "duration_seconds", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_id: int
    task_name: str
    task_type: str
    attempt: int
    started_at: str
    finished_at: str
    outcome: str
    duration_seconds: float
    error: str
    def __init__(self, id: _Optional[int] = ..., task_id: _Optional[int] = ..., task_name: _Optional[str] = ..., task_type: _Optional[str] = ..., attempt: _Optional[int] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., outcome: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class GetWorkerResponse(_message.Message):
    __slots__ = ("worker", "attempts", "failures")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    worker: Worker
    attempts: _containers.RepeatedCompositeFieldContainer[WorkerAttempt]
    failures: _containers.RepeatedCompositeFieldContainer[WorkerAttempt]
    def __init__(self, worker: _Optional[_Union[Worker, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[WorkerAttempt, _Mapping]]] = ..., failures: _Optional[_Iterable[_Union[WorkerAttempt, _Mapping]]] = ...) -> None: ...

class ListTaskTypesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTaskTypesResponse(_message.Message):
    __slots__ = ("types", "declarations")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    DECLARATIONS_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    declarations: _containers.RepeatedCompositeFieldContainer[TaskTypeDeclaration]
    def __init__(self, types: _Optional[_Iterable[str]] = ..., declarations: _Optional[_Iterable[_Union[TaskTypeDeclaration, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("id", "task_id", "status", "details", "created_at", "task_name", "task_type", "keepalive", "task_id64", "exact_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID64_FIELD_NUMBER: _ClassVar[int]
    EXACT_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_id: int
    status: TaskStatusEnum
    details: str
    created_at: str
    task_name: str
    task_type: str
    keepalive: bool
    task_id64: int
    exact_status: TaskStatusEnum
    def __init__(self, id: _Optional[int] = ..., task_id: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., details: _Optional[str] = ..., created_at: _Optional[str] = ..., task_name: _Optional[str] = ..., task_type: _Optional[str] = ..., keepalive: _Optional[bool] = ..., task_id64: _Optional[int] = ..., exact_status: _Optional[_Union[TaskStatusEnum, str]] = ...) -> None: ...

class TaskFilter(_message.Message):
    __slots__ = ("statuses", "type", "name_contains", "created_after", "created_before", "all", "queue")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[TaskStatusEnum]
    type: str
    name_contains: str
    created_after: str
    created_before: str
    all: bool
    queue: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[TaskStatusEnum, str]]] = ..., type: _Optional[str] = ..., name_contains: _Optional[str] = ..., created_after: _Optional[str] = ..., created_before: _Optional[str] = ..., all: _Optional[bool] = ..., queue: _Optional[str] = ...) -> None: ...

class CancelTasksRequest(_message.Message):
    __slots__ = ("ids", "filter", "reason", "dry_run", "resume_token")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: TaskFilter
    reason: str
    dry_run: bool
    resume_token: str
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[TaskFilter, _Mapping]] = ..., reason: _Optional[str] = ..., dry_run: _Optional[bool] = ..., resume_token: _Optional[str] = ...) -> None: ...

class CancelTasksResponse(_message.Message):
    __slots__ = ("count", "resume_token")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    count: int
    resume_token: str
    def __init__(self, count: _Optional[int] = ..., resume_token: _Optional[str] = ...) -> None: ...

class RetryTasksRequest(_message.Message):
    __slots__ = ("ids", "filter", "reason", "dry_run", "resume_token")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: TaskFilter
    reason: str
    dry_run: bool
    resume_token: str
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[TaskFilter, _Mapping]] = ..., reason: _Optional[str] = ..., dry_run: _Optional[bool] = ..., resume_token: _Optional[str] = ...) -> None: ...

class RetryTasksResponse(_message.Message):
    __slots__ = ("count", "resume_token")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    count: int
    resume_token: str
    def __init__(self, count: _Optional[int] = ..., resume_token: _Optional[str] = ...) -> None: ...

class DeleteTasksRequest(_message.Message):
    __slots__ = ("ids", "filter", "reason", "dry_run", "resume_token")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: TaskFilter
    reason: str
    dry_run: bool
    resume_token: str
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[TaskFilter, _Mapping]] = ..., reason: _Optional[str] = ..., dry_run: _Optional[bool] = ..., resume_token: _Optional[str] = ...) -> None: ...

class DeleteTasksResponse(_message.Message):
    __slots__ = ("count", "resume_token")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    count: int
    resume_token: str
    def __init__(self, count: _Optional[int] = ..., resume_token: _Optional[str] = ...) -> None: ...

class TaskTypeParameter(_message.Message):
    __slots__ = ("name", "type", "required", "default_value", "description", "choices", "minimum", "maximum", "aliases", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    required: bool
    default_value: str
    description: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    minimum: float
    maximum: float
    aliases: _containers.RepeatedScalarFieldContainer[str]
    format: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., default_value: _Optional[str] = ..., description: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., aliases: _Optional[_Iterable[str]] = ..., format: _Optional[str] = ...) -> None: ...

class TaskTypeDeclaration(_message.Message):
    __slots__ = ("name", "declared", "description", "parameters", "extra_parameters", "max_retries", "timeout_seconds", "backoff_seconds", "permanent_errors", "queue", "container")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DECLARED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    name: str
    declared: bool
    description: str
    parameters: _containers.RepeatedCompositeFieldContainer[TaskTypeParameter]
    extra_parameters: bool
    max_retries: int
    timeout_seconds: float
    backoff_seconds: float
    permanent_errors: _containers.RepeatedScalarFieldContainer[str]
    queue: str
    container: ContainerSpec
    def __init__(self, name: _Optional[str] = ..., declared: _Optional[bool] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[TaskTypeParameter, _Mapping]]] = ..., extra_parameters: _Optional[bool] = ..., max_retries: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., backoff_seconds: _Optional[float] = ..., permanent_errors: _Optional[_Iterable[str]] = ..., queue: _Optional[str] = ..., container: _Optional[_Union[ContainerSpec, _Mapping]] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("image", "entrypoint", "args", "env", "resource_requests", "resource_limits", "service_account")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceRequestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceLimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    image: str
    entrypoint: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    resource_requests: _containers.ScalarMap[str, str]
    resource_limits: _containers.ScalarMap[str, str]
    service_account: str
    def __init__(self, image: _Optional[str] = ..., entrypoint: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., resource_requests: _Optional[_Mapping[str, str]] = ..., resource_limits: _Optional[_Mapping[str, str]] = ..., service_account: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("timestamp", "uuid", "held", "leases_only")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    LEASES_ONLY_FIELD_NUMBER: _ClassVar[int]
    timestamp: str
    uuid: str
    held: _containers.RepeatedScalarFieldContainer[int]
    leases_only: bool
    def __init__(self, timestamp: _Optional[str] = ..., uuid: _Optional[str] = ..., held: _Optional[_Iterable[int]] = ..., leases_only: _Optional[bool] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lost", "lease_seconds")
    LOST_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lost: _containers.RepeatedScalarFieldContainer[int]
    lease_seconds: float
    def __init__(self, lost: _Optional[_Iterable[int]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class PullEventsRequest(_message.Message):
    __slots__ = ("agent_id", "slots", "task_types", "host", "pid", "held", "declarations_json", "queues", "version", "prefetch")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    DECLARATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREFETCH_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    slots: int
    task_types: _containers.RepeatedScalarFieldContainer[str]
    host: str
    pid: int
    held: _containers.RepeatedScalarFieldContainer[int]
    declarations_json: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    version: str
    prefetch: int
    def __init__(self, agent_id: _Optional[str] = ..., slots: _Optional[int] = ..., task_types: _Optional[_Iterable[str]] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., held: _Optional[_Iterable[int]] = ..., declarations_json: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., prefetch: _Optional[int] = ...) -> None: ...

class PullEventsResponse(_message.Message):
    __slots__ = ("work", "keepalive", "lease_seconds", "agent_id", "more_work", "installation_id")
    WORK_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MORE_WORK_FIELD_NUMBER: _ClassVar[int]
    INSTALLATION_ID_FIELD_NUMBER: _ClassVar[int]
    work: WorkAssignment
    keepalive: bool
    lease_seconds: float
    agent_id: str
    more_work: _containers.RepeatedCompositeFieldContainer[WorkAssignment]
    installation_id: str
    def __init__(self, work: _Optional[_Union[WorkAssignment, _Mapping]] = ..., keepalive: _Optional[bool] = ..., lease_seconds: _Optional[float] = ..., agent_id: _Optional[str] = ..., more_work: _Optional[_Iterable[_Union[WorkAssignment, _Mapping]]] = ..., installation_id: _Optional[str] = ...) -> None: ...

class WorkAssignment(_message.Message):
    __slots__ = ("assignment_id", "task", "lost_leases", "lease_seconds_left", "parents", "trace_parent")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LOST_LEASES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_LEFT_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    assignment_id: int
    task: Task
    lost_leases: int
    lease_seconds_left: float
    parents: _containers.RepeatedCompositeFieldContainer[StepResult]
    trace_parent: str
    def __init__(self, assignment_id: _Optional[int] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., lost_leases: _Optional[int] = ..., lease_seconds_left: _Optional[float] = ..., parents: _Optional[_Iterable[_Union[StepResult, _Mapping]]] = ..., trace_parent: _Optional[str] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("step", "task_id", "result_json", "left_out")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    step: str
    task_id: int
    result_json: str
    left_out: bool
    def __init__(self, step: _Optional[str] = ..., task_id: _Optional[int] = ..., result_json: _Optional[str] = ..., left_out: _Optional[bool] = ...) -> None: ...

class SpawnedTask(_message.Message):
    __slots__ = ("name", "task")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: CreateTaskRequest
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ...) -> None: ...

class AttemptOutcome(_message.Message):
    __slots__ = ("assignment_id", "task_id", "status", "retries", "lost_leases", "delay_seconds", "details", "outcome", "error", "result_json", "traceback", "spawned", "trace_parent")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    LOST_LEASES_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    SPAWNED_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    assignment_id: int
    task_id: int
    status: TaskStatusEnum
    retries: int
    lost_leases: int
    delay_seconds: float
    details: str
    outcome: str
    error: str
    result_json: str
    traceback: str
    spawned: _containers.RepeatedCompositeFieldContainer[SpawnedTask]
    trace_parent: str
    def __init__(self, assignment_id: _Optional[int] = ..., task_id: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., retries: _Optional[int] = ..., lost_leases: _Optional[int] = ..., delay_seconds: _Optional[float] = ..., details: _Optional[str] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ..., result_json: _Optional[str] = ..., traceback: _Optional[str] = ..., spawned: _Optional[_Iterable[_Union[SpawnedTask, _Mapping]]] = ..., trace_parent: _Optional[str] = ...) -> None: ...

class ReportOutcomesRequest(_message.Message):
    __slots__ = ("agent_id", "outcomes")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    outcomes: _containers.RepeatedCompositeFieldContainer[AttemptOutcome]
    def __init__(self, agent_id: _Optional[str] = ..., outcomes: _Optional[_Iterable[_Union[AttemptOutcome, _Mapping]]] = ...) -> None: ...

class ReportOutcomesResponse(_message.Message):
    __slots__ = ("refused",)
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    refused: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, refused: _Optional[_Iterable[int]] = ...) -> None: ...

class PauseQueueRequest(_message.Message):
    __slots__ = ("queue", "type", "reason")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    queue: str
    type: str
    reason: str
    def __init__(self, queue: _Optional[str] = ..., type: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class QueuePause(_message.Message):
    __slots__ = ("kind", "name", "reason", "paused_by", "paused_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    reason: str
    paused_by: str
    paused_at: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., reason: _Optional[str] = ..., paused_by: _Optional[str] = ..., paused_at: _Optional[str] = ...) -> None: ...

class PauseQueueResponse(_message.Message):
    __slots__ = ("pause", "already")
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_FIELD_NUMBER: _ClassVar[int]
    pause: QueuePause
    already: bool
    def __init__(self, pause: _Optional[_Union[QueuePause, _Mapping]] = ..., already: _Optional[bool] = ...) -> None: ...

class ResumeQueueRequest(_message.Message):
    __slots__ = ("queue", "type")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    type: str
    def __init__(self, queue: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class ResumeQueueResponse(_message.Message):
    __slots__ = ("resumed",)
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    resumed: bool
    def __init__(self, resumed: _Optional[bool] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Queue(_message.Message):
    __slots__ = ("name", "paused", "waiting", "running", "pause", "workers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    waiting: int
    running: int
    pause: QueuePause
    workers: int
    def __init__(self, name: _Optional[str] = ..., paused: _Optional[bool] = ..., waiting: _Optional[int] = ..., running: _Optional[int] = ..., pause: _Optional[_Union[QueuePause, _Mapping]] = ..., workers: _Optional[int] = ...) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues", "paused_types")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_TYPES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[Queue]
    paused_types: _containers.RepeatedCompositeFieldContainer[QueuePause]
    def __init__(self, queues: _Optional[_Iterable[_Union[Queue, _Mapping]]] = ..., paused_types: _Optional[_Iterable[_Union[QueuePause, _Mapping]]] = ...) -> None: ...

class SetLimitRequest(_message.Message):
    __slots__ = ("queue", "type", "concurrency", "rate_limit", "key")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    queue: str
    type: str
    concurrency: int
    rate_limit: str
    key: str
    def __init__(self, queue: _Optional[str] = ..., type: _Optional[str] = ..., concurrency: _Optional[int] = ..., rate_limit: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class TaskLimit(_message.Message):
    __slots__ = ("kind", "name", "concurrency", "rate_limit", "key", "set_by", "updated_at", "waiting", "running")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    concurrency: int
    rate_limit: str
    key: str
    set_by: str
    updated_at: str
    waiting: int
    running: int
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., concurrency: _Optional[int] = ..., rate_limit: _Optional[str] = ..., key: _Optional[str] = ..., set_by: _Optional[str] = ..., updated_at: _Optional[str] = ..., waiting: _Optional[int] = ..., running: _Optional[int] = ...) -> None: ...

class SetLimitResponse(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: TaskLimit
    def __init__(self, limit: _Optional[_Union[TaskLimit, _Mapping]] = ...) -> None: ...

class ListLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLimitsResponse(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[TaskLimit]
    def __init__(self, limits: _Optional[_Iterable[_Union[TaskLimit, _Mapping]]] = ...) -> None: ...

class ResetLimitRequest(_message.Message):
    __slots__ = ("queue", "type")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    type: str
    def __init__(self, queue: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class ResetLimitResponse(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: TaskLimit
    def __init__(self, limit: _Optional[_Union[TaskLimit, _Mapping]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id64", "name", "cron", "timezone", "every_seconds", "task", "overlap", "catchup", "paused", "ends_at", "next_tick", "last_tick", "last_task_id64", "last_task_status", "missed", "skipped", "declared_type", "created_by", "created_at", "updated_at", "undeclared_at")
    ID64_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_TICK_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_FIELD_NUMBER: _ClassVar[int]
    LAST_TASK_ID64_FIELD_NUMBER: _ClassVar[int]
    LAST_TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    DECLARED_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UNDECLARED_AT_FIELD_NUMBER: _ClassVar[int]
    id64: int
    name: str
    cron: str
    timezone: str
    every_seconds: float
    task: CreateTaskRequest
    overlap: str
    catchup: str
    paused: bool
    ends_at: str
    next_tick: str
    last_tick: str
    last_task_id64: int
    last_task_status: TaskStatusEnum
    missed: int
    skipped: int
    declared_type: str
    created_by: str
    created_at: str
    updated_at: str
    undeclared_at: str
    def __init__(self, id64: _Optional[int] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., every_seconds: _Optional[float] = ..., task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ..., overlap: _Optional[str] = ..., catchup: _Optional[str] = ..., paused: _Optional[bool] = ..., ends_at: _Optional[str] = ..., next_tick: _Optional[str] = ..., last_tick: _Optional[str] = ..., last_task_id64: _Optional[int] = ..., last_task_status: _Optional[_Union[TaskStatusEnum, str]] = ..., missed: _Optional[int] = ..., skipped: _Optional[int] = ..., declared_type: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., undeclared_at: _Optional[str] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("name", "cron", "timezone", "every", "task", "overlap", "catchup", "paused", "ends_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    EVERY_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    timezone: str
    every: str
    task: CreateTaskRequest
    overlap: str
    catchup: str
    paused: bool
    ends_at: str
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., every: _Optional[str] = ..., task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ..., overlap: _Optional[str] = ..., catchup: _Optional[str] = ..., paused: _Optional[bool] = ..., ends_at: _Optional[str] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("name", "id64")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID64_FIELD_NUMBER: _ClassVar[int]
    name: str
    id64: int
    def __init__(self, name: _Optional[str] = ..., id64: _Optional[int] = ...) -> None: ...

class GetScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("name", "cron", "timezone", "every", "task", "overlap", "catchup", "paused", "ends_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    EVERY_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    timezone: str
    every: str
    task: CreateTaskRequest
    overlap: str
    catchup: str
    paused: bool
    ends_at: str
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., every: _Optional[str] = ..., task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ..., overlap: _Optional[str] = ..., catchup: _Optional[str] = ..., paused: _Optional[bool] = ..., ends_at: _Optional[str] = ...) -> None: ...

class UpdateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TriggerScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TriggerScheduleResponse(_message.Message):
    __slots__ = ("task_id64",)
    TASK_ID64_FIELD_NUMBER: _ClassVar[int]
    task_id64: int
    def __init__(self, task_id64: _Optional[int] = ...) -> None: ...

class WorkflowStep(_message.Message):
    __slots__ = ("name", "task", "depends_on")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: CreateTaskRequest
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ..., depends_on: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateWorkflowRequest(_message.Message):
    __slots__ = ("name", "steps", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStep]
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[WorkflowStep, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreateWorkflowResponse(_message.Message):
    __slots__ = ("id", "existing")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    id: int
    existing: bool
    def __init__(self, id: _Optional[int] = ..., existing: _Optional[bool] = ...) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("id", "name", "status", "created_at", "updated_at", "finished_at", "steps", "step_counts", "created_by", "idempotency_key")
    class StepCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    status: TaskStatusEnum
    created_at: str
    updated_at: str
    finished_at: str
    steps: int
    step_counts: _containers.ScalarMap[str, int]
    created_by: str
    idempotency_key: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., steps: _Optional[int] = ..., step_counts: _Optional[_Mapping[str, int]] = ..., created_by: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class WorkflowStepState(_message.Message):
    __slots__ = ("name", "task_id", "type", "status", "depends_on", "spawned_by", "attempts", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    SPAWNED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    task_id: int
    type: str
    status: TaskStatusEnum
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    spawned_by: str
    attempts: int
    updated_at: str
    def __init__(self, name: _Optional[str] = ..., task_id: _Optional[int] = ..., type: _Optional[str] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ..., depends_on: _Optional[_Iterable[str]] = ..., spawned_by: _Optional[str] = ..., attempts: _Optional[int] = ..., updated_at: _Optional[str] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "steps")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStepState]
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[WorkflowStepState, _Mapping]]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("limit", "offset", "status")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    status: TaskStatusEnum
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., status: _Optional[_Union[TaskStatusEnum, str]] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[Workflow]
    def __init__(self, workflows: _Optional[_Iterable[_Union[Workflow, _Mapping]]] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    def __init__(self, cancelled: _Optional[int] = ...) -> None: ...

class RetryWorkflowRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class RetryWorkflowResponse(_message.Message):
    __slots__ = ("retried",)
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    retried: int
    def __init__(self, retried: _Optional[int] = ...) -> None: ...
