"""The edge's compiled request path (oca/http/_serve.c) and the lane it reads a worker's state through.

`answer(lane, conn, method, url, headers, version, keep_alive, hosts, started)` answers a plain GET or
HEAD of a file the worker has already looked up and opened — the request players send for every
segment — in one call, and returns False, having sent and counted nothing, for anything else; the
Python path (`oca.http.handler.handle` and `EdgeProtocol`) answers that. `_serve.c`'s header says
exactly what it answers. `answer` is None when the module was not built (the Python path answers all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oca.metrics import DURATION_BUCKETS

if TYPE_CHECKING:
    from oca.http.protocol import Shared

try:
    from oca.http._serve import answer
except ImportError:  # not built: every request takes the Python path
    answer = None


def lane(shared: Shared) -> tuple | None:
    """What `answer` reads, in `_serve.c`'s L_* order; None when there is no compiled path.

    Only objects that live as long as the worker's configuration: `Context.configure` drops the
    lane, and what the worker swaps at other times (the access log, the per-key hit counts) is read
    from `shared` on each call."""
    ctx = shared.ctx
    if answer is None or (ctx.require_tokens and ctx.verified is None):
        return None
    m = shared.metrics
    cors = True if ctx.cors_any else (ctx.cors_origins or None)
    memory = ctx.verified.memory if ctx.require_tokens else None
    return (ctx.keys, memory, ctx.view.cached, shared.fds.open_files, cors, ctx.clock, m,
            m.responses, m.ranges, m.hits, m.buckets, DURATION_BUCKETS, shared, ctx,
            float(ctx.limits.idle_timeout))
