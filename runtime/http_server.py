"""How the webhook receiver and the codec server serve HTTP: uvicorn, plus the read deadlines
and the shutdown it does not give by itself.

    code = serve(app, host="127.0.0.1", port=8081, program="webhook_receiver",
                 header_timeout_seconds=10, body_timeout_seconds=10, shutdown_grace_seconds=30)

Reading a request is bounded. uvicorn's h11 protocol has one timer, `timeout_keep_alive`, armed
after a response and cancelled by the next byte: a connection's first request has none at all,
so a client that never finishes its request head, or trickles its body, holds its connection for
as long as it likes. None of uvicorn's options closes that: `h11_max_incomplete_event_size` bounds the head's
size, not its time; `limit_concurrency` only answers 503 to everyone else once stalled
connections fill it; an ASGI middleware sees nothing before the head is complete. So
`ReadDeadlineProtocol`, a small subclass of uvicorn's h11 protocol, gives each request head
`header_timeout_seconds` from the moment the server waits for it and its body
`body_timeout_seconds` from the end of its head. Both are totals, not idle times: a byte now and
then does not extend them. A late head is answered 408 and closed; a late body is closed (the
application owns that request's answer, and answers 408 itself when it is the one reading).

SIGTERM or SIGINT stops accepting connections at once, lets the requests in flight finish for
up to `shutdown_grace_seconds` (then cancels them), runs the application's shutdown, logs
`http_server_stopping` and `http_server_stopped`, and `serve` returns 0. uvicorn itself would
raise the signal again after its clean shutdown, ending the process by the signal (exit 143).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from runtime.logging import get_logger

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30.0
# An idle keep-alive connection is closed after this (uvicorn's own timer).
KEEP_ALIVE_SECONDS = 5
# The application reading a body answers 408 at its own body timeout; the connection's deadline
# comes this much later, so that answer goes out first.
APPLICATION_ANSWERS_FIRST_SECONDS = 1.0
_HEAD_TOO_LATE = b"request head not received in time\n"
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TOO_LATE), _HEAD_TOO_LATE)
)

log = get_logger("http_server")


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head and one for its body
    (class attributes; `read_deadline_protocol` makes a subclass with other values)."""

    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_state: object = None  # the client's h11 state the deadline bounds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_read_state()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_read_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start reading the next request
        self._follow_read_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _follow_read_state(self) -> None:
        """Arm the deadline of what the connection now waits for (a head or a body), keeping
        the running one while it still waits for the same thing."""
        state = self.conn.their_state
        if state is self._deadline_state and self._deadline is not None:
            return
        self._cancel_deadline()
        if self.transport is None or self.transport.is_closing():
            return
        if state is h11.IDLE:
            self._deadline = self.loop.call_later(self.header_timeout_seconds, self._head_too_late)
        elif state is h11.SEND_BODY:
            self._deadline = self.loop.call_later(self.body_timeout_seconds, self._body_too_late)
        self._deadline_state = state

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_state = None, None

    def _head_too_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        partial = bool(self.conn.trailing_data[0])
        if partial:  # a client that said nothing is simply disconnected
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        log.info("request_read_timeout", part="head", client=_address(self.client), partial=partial)
        self.transport.close()

    def _body_too_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info("request_read_timeout", part="body", client=_address(self.client))
        self.transport.close()


def _address(client: tuple[str, int] | None) -> str | None:
    return f"{client[0]}:{client[1]}" if client else None


def read_deadline_protocol(header_timeout_seconds: float, body_timeout_seconds: float) -> type[ReadDeadlineProtocol]:
    """The protocol class uvicorn instantiates per connection, with these deadlines."""
    return type(
        "ReadDeadlineProtocol",
        (ReadDeadlineProtocol,),
        {"header_timeout_seconds": header_timeout_seconds, "body_timeout_seconds": body_timeout_seconds},
    )


class _LoggedShutdownServer(uvicorn.Server):
    async def shutdown(self, sockets: Any = None) -> None:
        log.info("http_server_stopping", grace_seconds=self.config.timeout_graceful_shutdown,
                 connections=len(self.server_state.connections))
        await super().shutdown(sockets)


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    program: str,
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
) -> int:
    """Serve `app` until SIGTERM or SIGINT; 0 after a clean shutdown. A port that cannot be
    bound ends the process with uvicorn's exit code 3, as `uvicorn.run` does.

    No access log (a request line may carry a credential); uvicorn's own lines go through the
    process's JSON logging (`log_config=None` keeps its handlers)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=read_deadline_protocol(header_timeout_seconds, body_timeout_seconds + APPLICATION_ANSWERS_FIRST_SECONDS),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=shutdown_grace_seconds,  # type: ignore[arg-type]  (a float works)
        access_log=False,
        log_config=None,
        server_header=False,
    )
    server = _LoggedShutdownServer(config)

    # uvicorn installs its own handlers while it serves and, once shut down, puts these back
    # and raises the signal again: here that only repeats a request already carried out, so
    # the process exits 0 rather than by the signal. A signal before uvicorn's handlers are in
    # place stops the server as soon as it has started.
    def stop(signum: int, frame: Any) -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    server.run()
    log.info("http_server_stopped", program=program)
    return 0
