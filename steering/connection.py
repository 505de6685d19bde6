"""The compiled answer at the connection: plain cached steer queries answered as their bytes arrive.

Why: on one core here aiohttp's own work for a request — the parsed message, the request object, the
handler's task, the response object and its writer — costs ~27 µs, a whole "hello" request ~30 µs. The
steering answer itself, compiled (steering/_answer.c), costs 1–3 µs. So a read that holds exactly one
plain `GET /api/v1/steer?ip=&key=` head (steering/_request_head.h: strict HTTP/1.1, one Host, no body,
nothing pipelined behind it), arriving while the connection has nothing in flight, is answered right
there: `respond` checks the head, finds the answer in the ranking cache, counts it in the metrics as every
answer is counted, and returns the whole response — status line and fields as aiohttp writes them for the
steer handler, Date included — which goes to the transport as one write. Everything else is handed to
aiohttp unchanged, and aiohttp answers it: other routes, errors, titles, cache misses, other heads.

The connection stays aiohttp's: its parser sees every byte the compiled answer did not take, its keep-alive
timer is moved on after each answer exactly as aiohttp's own loop moves it, and shutdown, flow control and
closing are untouched. A compiled answer is only written when aiohttp is waiting for the next request
with nothing queued, so responses keep the order of requests, and while the transport takes writes (a
client that does not read its answers meets aiohttp's flow control). And only while aiohttp's parser is known to
stand at a message boundary: after a read that was not one whole plain head (a split head, a body,
pipelining) the connection stays with aiohttp for good.

It relies on a few of aiohttp's RequestHandler attributes (`ASSUMED`); with an aiohttp that lacks one of
them, `compiled_connections` says so in the log and the service runs without it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_protocol import RequestHandler

if TYPE_CHECKING:
    from steering.service import SteeringHandlers

log = logging.getLogger(__name__)

# What SteeringConnection reads or moves of aiohttp's RequestHandler (aiohttp 3.14's web_protocol).
ASSUMED = ("_waiter", "_messages", "_close", "_force_close", "_payload_parser", "_upgraded", "_paused", "_loop",
           "_keepalive_timeout", "_next_keepalive_close_time", "_keepalive_handle")
SERVER_FIELD = SERVER_SOFTWARE.encode()


class SteeringConnection(RequestHandler):
    """aiohttp's handler of one connection, answering plain cached steer queries itself (module doc)."""

    __slots__ = ("_handlers", "_compiled")

    def __init__(self, manager: web.Server, *, handlers: SteeringHandlers, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._handlers = handlers
        # Still eligible: the setting was on when the connection opened, and every read so far was one
        # whole plain request head (so aiohttp's parser stands at a message boundary).
        self._compiled = handlers.runtime.settings.compiled_path

    def data_received(self, data: bytes) -> None:
        if self._compiled:
            waiter = self._waiter
            # aiohttp's own test for "waiting for the next request" (RequestHandler._process_keepalive), and
            # a transport that takes writes: with its buffer over the high-water mark (a client that does not
            # read), aiohttp answers, waiting for the buffer to drain and then pausing reads.
            idle = (waiter is not None and not waiter.done() and not self._messages and not self._close
                    and not self._force_close and self._payload_parser is None and not self._upgraded
                    and not self._paused)
            try:
                response = self._handlers.respond(data, idle)
            except Exception:       # a fault of ours must not cost the client its answer: aiohttp gives it
                log.exception("compiled answer failed; this connection is left to aiohttp")
                response = False
            if response.__class__ is bytes:
                self.transport.write(response)          # type: ignore[union-attr]
                self._answered()
                return
            self._compiled = response is None
        super().data_received(data)

    def _answered(self) -> None:
        # What RequestHandler.start does after each response it writes on a kept-alive connection.
        loop = self._loop
        self._next_keepalive_close_time = close_time = loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)


class SteeringServer(web.Server):
    """aiohttp's low-level server, whose connections are SteeringConnections."""

    handlers: SteeringHandlers

    def __call__(self) -> RequestHandler:
        return SteeringConnection(self, handlers=self.handlers, loop=self._loop, **self._kwargs)


def compiled_connections(server: web.Server, handlers: SteeringHandlers) -> bool:
    """Make `server` (the one AppRunner.setup made, before any connection) open SteeringConnections.

    aiohttp builds that server itself (Application._make_handler); its protocol factory is the server's
    `__call__`, so the server becomes a SteeringServer: the same object and state, one method more.
    False, logged, when this aiohttp's RequestHandler lacks what SteeringConnection assumes."""
    slots = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}
    missing = [name for name in ASSUMED if name not in slots]
    if missing or not hasattr(RequestHandler, "_process_keepalive"):
        log.warning("compiled answers at the connection are off: aiohttp's RequestHandler lacks %s",
                    ", ".join(missing) or "_process_keepalive")
        return False
    server.__class__ = SteeringServer
    server.handlers = handlers      # type: ignore[attr-defined]
    return True
