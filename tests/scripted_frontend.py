"""A scripted Temporal frontend: a real gRPC server on loopback that a real `Worker` connects to.

It answers what a client and a worker ask at start (system info, namespace) and hands out only
the workflow tasks a test scripts, one at a time, recording what the worker answers. The test
builds the history itself (`ScriptedRun`), turning the worker's commands into the events a server
would write, so the same history can then be fed to a `Replayer`.

It serves no activity tasks: a scripted run's activities complete when the script says so.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, NamespaceState, QueryResultType, TaskQueueKind
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    History,
    HistoryEvent,
    TimerStartedEventAttributes,
    WorkflowExecutionStartedEventAttributes,
    WorkflowExecutionUpdateAcceptedEventAttributes,
    WorkflowExecutionUpdateCompletedEventAttributes,
    WorkflowTaskCompletedEventAttributes,
    WorkflowTaskScheduledEventAttributes,
    WorkflowTaskStartedEventAttributes,
)
from temporalio.api.namespace.v1 import NamespaceConfig, NamespaceInfo
from temporalio.api.protocol.v1 import Message
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Acceptance, Input, Meta, Request, Response
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeNamespaceResponse,
    GetSystemInfoRequest,
    GetSystemInfoResponse,
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryResponse,
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    RespondQueryTaskCompletedRequest,
    RespondQueryTaskCompletedResponse,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskCompletedResponse,
    RespondWorkflowTaskFailedRequest,
    RespondWorkflowTaskFailedResponse,
    ShutdownWorkerRequest,
    ShutdownWorkerResponse,
)
from temporalio.api.workflowservice.v1 import service_pb2_grpc

NORMAL = "normal"
STICKY = "sticky"
# How long an empty poll is held before it is answered with no task (a real server holds ~60 s).
LONG_POLL_SECONDS = 0.2

WorkerReply = RespondWorkflowTaskCompletedRequest | RespondWorkflowTaskFailedRequest | RespondQueryTaskCompletedRequest


class _RecordCalls(grpc.aio.ServerInterceptor):
    def __init__(self, calls: list[str]) -> None:
        self._calls = calls

    async def intercept_service(self, continuation, handler_call_details):
        self._calls.append(handler_call_details.method.rsplit("/", 1)[-1])
        return await continuation(handler_call_details)


class ScriptedFrontend(service_pb2_grpc.WorkflowServiceServicer):
    """The WorkflowService calls a worker makes, answered from a script."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.calls: list[str] = []  # every RPC the client and worker made, in order
        self.history_fetches: list[str] = []  # run ids whose full history the worker asked for
        self._tasks: dict[str, collections.deque[PollWorkflowTaskQueueResponse]] = {
            NORMAL: collections.deque(),
            STICKY: collections.deque(),
        }
        self._replies: asyncio.Queue[WorkerReply] = asyncio.Queue()
        self._runs: dict[str, ScriptedRun] = {}
        self.sticky_queue: str | None = None

    # The script's side
    def add_run(self, run: "ScriptedRun") -> None:
        self._runs[run.run_id] = run

    async def serve(self, task: PollWorkflowTaskQueueResponse, *, queue: str = NORMAL, timeout: float = 10) -> WorkerReply:
        """Hand `task` to the next poll of `queue` and return what the worker answered to it."""
        self._tasks[queue].append(task)
        reply = await asyncio.wait_for(self._replies.get(), timeout)
        if reply.task_token != task.task_token:
            raise AssertionError(f"worker answered task {reply.task_token!r}, expected {task.task_token!r}")
        return reply

    # The worker's side
    async def GetSystemInfo(self, request: GetSystemInfoRequest, context) -> GetSystemInfoResponse:
        response = GetSystemInfoResponse(server_version="1.29.0-scripted")
        caps = response.capabilities
        caps.signal_and_query_header = True
        caps.internal_error_differentiation = True
        caps.activity_failure_include_heartbeat = True
        caps.supports_schedules = True
        caps.encoded_failure_attributes = True
        caps.upsert_memo = True
        caps.eager_workflow_start = True
        caps.sdk_metadata = True
        return response

    async def DescribeNamespace(self, request: DescribeNamespaceRequest, context) -> DescribeNamespaceResponse:
        return DescribeNamespaceResponse(
            namespace_info=NamespaceInfo(
                name=self.namespace, id=str(uuid.uuid5(uuid.NAMESPACE_URL, self.namespace)), state=NamespaceState.NAMESPACE_STATE_REGISTERED
            ),
            config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=86400)),
        )

    async def PollWorkflowTaskQueue(self, request: PollWorkflowTaskQueueRequest, context) -> PollWorkflowTaskQueueResponse:
        queue = STICKY if request.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY else NORMAL
        waited = 0.0
        while not self._tasks[queue]:
            if waited >= LONG_POLL_SECONDS:
                return PollWorkflowTaskQueueResponse()
            await asyncio.sleep(0.01)
            waited += 0.01
        return self._tasks[queue].popleft()

    async def RespondWorkflowTaskCompleted(self, request: RespondWorkflowTaskCompletedRequest, context) -> RespondWorkflowTaskCompletedResponse:
        if request.sticky_attributes.worker_task_queue.name:
            self.sticky_queue = request.sticky_attributes.worker_task_queue.name
        self._replies.put_nowait(request)
        return RespondWorkflowTaskCompletedResponse()

    async def RespondWorkflowTaskFailed(self, request: RespondWorkflowTaskFailedRequest, context) -> RespondWorkflowTaskFailedResponse:
        self._replies.put_nowait(request)
        return RespondWorkflowTaskFailedResponse()

    async def RespondQueryTaskCompleted(self, request: RespondQueryTaskCompletedRequest, context) -> RespondQueryTaskCompletedResponse:
        self._replies.put_nowait(request)
        return RespondQueryTaskCompletedResponse()

    async def GetWorkflowExecutionHistory(
        self, request: GetWorkflowExecutionHistoryRequest, context
    ) -> GetWorkflowExecutionHistoryResponse:
        # A worker that no longer caches a run it gets a sticky task for asks for the whole history.
        self.history_fetches.append(request.execution.run_id)
        run = self._runs[request.execution.run_id]
        return GetWorkflowExecutionHistoryResponse(history=History(events=run.events))

    async def ShutdownWorker(self, request: ShutdownWorkerRequest, context) -> ShutdownWorkerResponse:
        return ShutdownWorkerResponse()


@contextlib.asynccontextmanager
async def scripted_frontend(namespace: str = "default") -> AsyncIterator[tuple[ScriptedFrontend, str]]:
    """A running frontend and its loopback address."""
    frontend = ScriptedFrontend(namespace)
    server = grpc.aio.server(interceptors=[_RecordCalls(frontend.calls)])
    service_pb2_grpc.add_WorkflowServiceServicer_to_server(frontend, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield frontend, f"127.0.0.1:{port}"
        # An answer the script did not wait for (a task answered twice, say) is a finding too.
        assert frontend._replies.empty(), f"the worker sent answers no task waited for: {frontend._replies.get_nowait()}"
    finally:
        await server.stop(grace=None)


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass
class ScriptedRun:
    """One workflow run's history, grown the way a server grows it."""

    workflow_id: str
    workflow_type: str
    task_queue: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    events: list[HistoryEvent] = field(default_factory=list)
    _tasks_served: int = 0
    _last_started_id: int = 0  # of the last workflow task the worker completed
    _pending_updates: dict[str, Request] = field(default_factory=dict)

    def _add(self, event_type: EventType.ValueType, **attributes: Any) -> HistoryEvent:
        event = HistoryEvent(event_id=len(self.events) + 1, event_time=_now(), event_type=event_type, **attributes)
        self.events.append(event)
        return event

    @property
    def last_event_id(self) -> int:
        return len(self.events)

    def _history_size(self) -> int:
        return History(events=self.events).ByteSize()

    def start(self, input: Payloads | None = None) -> None:
        self._add(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            workflow_execution_started_event_attributes=WorkflowExecutionStartedEventAttributes(
                workflow_type=WorkflowType(name=self.workflow_type),
                task_queue=TaskQueue(name=self.task_queue),
                input=input,
                workflow_task_timeout=Duration(seconds=10),
                original_execution_run_id=self.run_id,
                first_execution_run_id=self.run_id,
                attempt=1,
            ),
        )
        self.schedule_workflow_task()

    def schedule_workflow_task(self) -> None:
        self._add(
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            workflow_task_scheduled_event_attributes=WorkflowTaskScheduledEventAttributes(
                task_queue=TaskQueue(name=self.task_queue), start_to_close_timeout=Duration(seconds=10), attempt=1
            ),
        )

    def _token(self, kind: str) -> bytes:
        self._tasks_served += 1
        return f"{self.run_id}/{self._tasks_served}/{kind}".encode()

    def _response(self, token: bytes, events: Sequence[HistoryEvent], **fields: Any) -> PollWorkflowTaskQueueResponse:
        return PollWorkflowTaskQueueResponse(
            task_token=token,
            workflow_execution=WorkflowExecution(workflow_id=self.workflow_id, run_id=self.run_id),
            workflow_type=WorkflowType(name=self.workflow_type),
            previous_started_event_id=self._last_started_id,
            history=History(events=events),
            workflow_execution_task_queue=TaskQueue(name=self.task_queue),
            scheduled_time=_now(),
            started_time=_now(),
            **fields,
        )

    def workflow_task(self, *, sticky: bool = False, updates: Sequence[tuple[str, str, Payloads | None]] = ()) -> PollWorkflowTaskQueueResponse:
        """Start the scheduled workflow task (the history's last event) and hand it out, with the
        given updates `(update id, name, args)` as messages. A sticky task carries only the events
        since the last task the worker completed."""
        scheduled = self.events[-1]
        assert scheduled.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, "no workflow task is scheduled"
        self._add(
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes=WorkflowTaskStartedEventAttributes(
                scheduled_event_id=scheduled.event_id, identity="scripted", request_id=str(uuid.uuid4()),
                history_size_bytes=self._history_size(),
            ),
        )
        messages = []
        for update_id, name, args in updates:
            request = Request(meta=Meta(update_id=update_id, identity="scripted"), input=Input(name=name, args=args))
            self._pending_updates[update_id] = request
            body = any_pb2.Any()
            body.Pack(request)
            messages.append(
                Message(id=f"{update_id}/request", protocol_instance_id=update_id, event_id=scheduled.event_id, body=body)
            )
        events = self.events[self._last_started_id :] if sticky else self.events
        return self._response(
            self._token("workflow"), list(events), started_event_id=self.last_event_id, attempt=1, messages=messages
        )

    def query_task(self, query_type: str) -> PollWorkflowTaskQueueResponse:
        """A legacy query: a task of its own, with the whole history as it stands."""
        return self._response(self._token("query"), list(self.events), query=WorkflowQuery(query_type=query_type))

    def complete_workflow_task(self, reply: RespondWorkflowTaskCompletedRequest) -> list[HistoryEvent]:
        """Write the events the server writes for a completed workflow task; returns the new ones."""
        started = self.events[-1]
        assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        first_new = self.last_event_id
        completed = self._add(
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes=WorkflowTaskCompletedEventAttributes(
                scheduled_event_id=started.workflow_task_started_event_attributes.scheduled_event_id,
                started_event_id=started.event_id,
                identity=reply.identity,
            ),
        )
        self._last_started_id = started.event_id
        messages = {message.id: message for message in reply.messages}
        for command in reply.commands:
            self._command_to_event(command, messages, completed.event_id)
        return self.events[first_new:]

    def _command_to_event(self, command, messages: dict[str, Message], completed_id: int) -> None:
        kind = command.command_type
        if kind == CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK:
            a = command.schedule_activity_task_command_attributes
            self._add(
                EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                    activity_id=a.activity_id, activity_type=a.activity_type, task_queue=a.task_queue, header=a.header,
                    input=a.input, schedule_to_close_timeout=a.schedule_to_close_timeout,
                    schedule_to_start_timeout=a.schedule_to_start_timeout, start_to_close_timeout=a.start_to_close_timeout,
                    heartbeat_timeout=a.heartbeat_timeout, retry_policy=a.retry_policy,
                    workflow_task_completed_event_id=completed_id,
                ),
            )
        elif kind == CommandType.COMMAND_TYPE_START_TIMER:
            a = command.start_timer_command_attributes
            self._add(
                EventType.EVENT_TYPE_TIMER_STARTED,
                timer_started_event_attributes=TimerStartedEventAttributes(
                    timer_id=a.timer_id, start_to_fire_timeout=a.start_to_fire_timeout, workflow_task_completed_event_id=completed_id
                ),
            )
        elif kind == CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE:
            message = messages[command.protocol_message_command_attributes.message_id]
            if message.body.Is(Acceptance.DESCRIPTOR):
                acceptance = Acceptance()
                message.body.Unpack(acceptance)
                self._add(
                    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                    workflow_execution_update_accepted_event_attributes=WorkflowExecutionUpdateAcceptedEventAttributes(
                        protocol_instance_id=message.protocol_instance_id,
                        accepted_request_message_id=acceptance.accepted_request_message_id,
                        accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
                        accepted_request=self._pending_updates[message.protocol_instance_id],
                    ),
                )
            elif message.body.Is(Response.DESCRIPTOR):
                response = Response()
                message.body.Unpack(response)
                accepted = next(
                    e.event_id
                    for e in self.events
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
                    and e.workflow_execution_update_accepted_event_attributes.protocol_instance_id == message.protocol_instance_id
                )
                self._add(
                    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
                    workflow_execution_update_completed_event_attributes=WorkflowExecutionUpdateCompletedEventAttributes(
                        accepted_event_id=accepted, meta=response.meta, outcome=response.outcome
                    ),
                )
            else:
                raise AssertionError(f"scripted frontend cannot write an event for message {message}")
        else:
            raise AssertionError(f"scripted frontend cannot write an event for command {CommandType.Name(kind)}")

    def complete_activity(self, scheduled_event_id: int, result: Payloads) -> None:
        """The activity scheduled at `scheduled_event_id` starts and completes, and a workflow
        task is scheduled for it, as the server writes them."""
        started = self._add(
            EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                scheduled_event_id=scheduled_event_id, identity="scripted", request_id=str(uuid.uuid4()), attempt=1
            ),
        )
        self._add(
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                result=result, scheduled_event_id=scheduled_event_id, started_event_id=started.event_id, identity="scripted"
            ),
        )
        self.schedule_workflow_task()


def is_answered_query(reply: WorkerReply) -> bool:
    return isinstance(reply, RespondQueryTaskCompletedRequest) and reply.completed_type == QueryResultType.QUERY_RESULT_TYPE_ANSWERED
