"""`oca serve` (the edge server) and `oca token` (signed URLs): registered into `oca.cli`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from oca import tokens
from oca.applog import setup_json_logging
from oca.config import ConfigError, load_oca_config, parse_address, parse_duration
from oca.serve_spec import ServeSpec, root_edge_data


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the edge server (supervisor + workers) in the foreground",
                           description="Serve content keys over HTTP/1.1 byte ranges. Either --config "
                           "(store-backed, the appliance) or --root DIR (a plain directory, tokens open).")
    src = serve.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="oca.toml (store + edge settings)")
    src.add_argument("--root", type=Path, help="serve this directory, indexed at start (dev / origin)")
    serve.add_argument("--listen", help="HOST:PORT (default: server.listen, or 0.0.0.0:8080 with --root)")
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers, 0 = one per core)")
    serve.add_argument("--admin", help="admin HOST:PORT for /metrics /healthz /readyz "
                       "(default: admin.listen; none with --root unless given)")
    serve.add_argument("--access-log", help="with --root: write the access log here")
    serve.add_argument("--rescan", help="with --root: pick up added and removed files this often, e.g. 30s "
                       "(an origin serving what ingest publishes; default: only at start and on SIGHUP)")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="signed URLs").add_subparsers(dest="token_command", required=True,
                                                                      metavar="ACTION")
    sign = token.add_parser("sign", help="print a signed URL for a content key")
    sign.add_argument("key", help="content key (t1/avc-720p.mp4) or URL path (/t1/avc-720p.mp4)")
    sign.add_argument("--keys", required=True, type=Path, help="key-ring file (oca/tokens.py documents it)")
    sign.add_argument("--kid", help="key id to sign with (default: the first active key)")
    when = sign.add_mutually_exclusive_group()
    when.add_argument("--ttl", default="1h", help="validity from now: 30s, 15m, 6h (default 1h)")
    when.add_argument("--expires", type=int, help="absolute expiry, Unix seconds")
    sign.add_argument("--client-prefix", help="bind to a client prefix, e.g. 203.0.113.0/24")
    sign.add_argument("--base-url", default="", help="prepend this, e.g. http://oca1.example:8080")
    sign.set_defaults(func=cmd_token_sign)
    check = token.add_parser("verify", help="check a signed URL's token against a key ring")
    check.add_argument("url", help="path?query or full URL")
    check.add_argument("--keys", required=True, type=Path)
    check.add_argument("--client", help="client IP, for client-prefix tokens")
    check.set_defaults(func=cmd_token_verify)


def _workers(n: int) -> int:
    return n if n > 0 else len(os.sched_getaffinity(0))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvloop

    from oca.supervisor import Supervisor

    level = getattr(args, "log_level", "INFO").upper()
    if args.config is not None:
        if args.rescan is not None:
            raise ConfigError("--rescan", "", "only with --root (a store-backed edge sees its index change)")
        config = load_oca_config(args.config)
        edge = config.edge
        if edge.tokens.mode == "require":
            tokens.load_key_ring(str(edge.tokens.keys_file))  # fail now, not in every worker
        listen = _address(args.listen, "--listen") if args.listen else edge.server.listen
        workers = _workers(args.workers if args.workers is not None else edge.server.workers)
        admin = _address(args.admin, "--admin") if args.admin else edge.admin.listen
        spec = ServeSpec(listen, config_path=config.path, log_level=level)
    else:
        if not args.root.is_dir():
            raise ConfigError("--root", "", f"not a directory: {args.root}")
        listen_text = args.listen or "0.0.0.0:8080"
        listen = _address(listen_text, "--listen")
        workers = _workers(args.workers or 0)
        admin = _address(args.admin, "--admin") if args.admin else None
        data = root_edge_data(listen_text, workers, access_log=args.access_log, admin=args.admin)
        spec = ServeSpec(listen, root=args.root.resolve(), edge_data=data, log_level=level,
                         rescan=_rescan(args.rescan))
        edge = spec.edge
    setup_json_logging(level, role="supervisor")
    sup = Supervisor(spec, workers, admin, edge.server.drain_timeout)
    return uvloop.run(sup.run())


def _rescan(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise ConfigError("--rescan", "", str(e)) from None
    if seconds <= 0:
        raise ConfigError("--rescan", "", f"must be positive, got {text!r}")
    return seconds


def _address(text: str, flag: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as e:
        raise ConfigError(flag, "", str(e)) from None


def cmd_token_sign(args: argparse.Namespace) -> int:
    ring = tokens.load_key_ring(str(args.keys))
    if args.kid:
        key = ring.get(args.kid)
        if key is None or key.retired:
            raise ConfigError(str(args.keys), "keys", f"no active key with id {args.kid!r}")
    else:
        key = ring.active()[0]
    path = args.key if args.key.startswith("/") else "/" + args.key
    expires = args.expires if args.expires is not None else int(time.time() + parse_duration(args.ttl))
    query = tokens.sign_query(path, key.id, key.secret, expires, args.client_prefix)
    print(f"{args.base_url.rstrip('/')}{path}?{query}")
    return 0


def cmd_token_verify(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    ring = tokens.load_key_ring(str(args.keys))
    parts = urlsplit(args.url)
    result = tokens.verify(ring, parts.path, parts.query, time.time(), args.client)
    print(result.reason + (f" (kid {result.kid})" if result.kid else ""))
    return 0 if isinstance(result, tokens.Ok) else 1

