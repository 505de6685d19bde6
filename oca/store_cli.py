"""`oca store ...`: operate the appliance's content store from the shell.

Exit codes: 0 done, 1 the operation failed (message on stderr), 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from oca.config import StoreConfig, load_toml, read_store_config
from oca.contentkey import InvalidKey
from oca.store import Store, StoreError, init_disks

DEFAULT_CONFIG = "/etc/oca/oca.toml"


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="manage the content store (init, add, ls, rm, move, verify, partials, ...)",
                           description="Manage the appliance's tiered content store.")
    cmds = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")

    def action(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help, description=help)
        p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE",
                       help=f"the appliance's TOML config (default {DEFAULT_CONFIG})")
        p.set_defaults(func=lambda args: _run(fn, args))
        return p

    action("init", cmd_init, "create the disk directories, markers and the index")
    p = action("add", cmd_add, "copy a local file into the store under KEY and publish it atomically")
    p.add_argument("key", metavar="KEY")
    p.add_argument("src", metavar="SRCFILE")
    p.add_argument("--tier", choices=("ssd", "hdd"), help="target tier (default: store.default_tier)")
    p.add_argument("--sha256", metavar="HEX", help="expected SHA-256; the copy must match it")
    p = action("ls", cmd_ls, "list the keys in the index")
    p.add_argument("--json", action="store_true", help="one JSON object per key")
    p = action("rm", cmd_rm, "remove KEY from the index, then its file")
    p.add_argument("key", metavar="KEY")
    p = action("move", cmd_move, "move KEY to another tier (copy, verify, swap, delete the old copy)")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--tier", choices=("ssd", "hdd"), required=True)
    p = action("verify", cmd_verify, "re-hash files (all, or KEY); quarantine mismatches")
    p.add_argument("key", metavar="KEY", nargs="?")
    p.add_argument("--json", action="store_true", help="one JSON object per key")
    p = action("rebuild", cmd_rebuild, "rebuild the index from the files on the disks")
    p.add_argument("--rehash", action="store_true", help="hash every file instead of checking sizes")
    p = action("usage", cmd_usage, "capacity, usage and state of each disk")
    p.add_argument("--json", action="store_true")
    p = action("partials", cmd_partials, "list partial downloads (resumable), or discard one key's")
    p.add_argument("--discard", metavar="KEY", help="delete KEY's partial downloads (not one being written)")
    p.add_argument("--json", action="store_true", help="one JSON object per partial")


def _config(args: argparse.Namespace, *, check_dirs: bool = True) -> StoreConfig:
    return read_store_config(load_toml(args.config), check_dirs=check_dirs)


def _run(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return fn(args)
    except (StoreError, InvalidKey) as e:
        print(f"oca store {args.store_command}: {e}", file=sys.stderr)
        return 1


def cmd_init(args: argparse.Namespace) -> int:
    config = _config(args, check_dirs=False)
    created = init_disks(config)
    with Store.open(config, cleanup=True) as store:
        states = store.check_disks()
    for disk in config.disks:
        note = "initialised" if disk.id in created else "already initialised"
        print(f"{disk.id:8} {disk.path}  {note}, {states[disk.id].state}")
    print(f"index    {config.index_path}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    with Store.open(_config(args), cleanup=True) as store:
        entry = store.add_file(args.key, args.src, tier=args.tier, sha256=args.sha256)
    print(f"added {entry.key} ({entry.size} bytes, sha256 {entry.sha256}) on {entry.disk}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with Store.open(_config(args)) as store:
        for e in store.entries():
            if args.json:
                print(json.dumps({"key": e.key, "tier": e.tier, "disk": e.disk, "size": e.size,
                                  "sha256": e.sha256, "state": e.state}))
            else:
                print(f"{e.tier:4} {e.disk:7} {e.state:11} {e.size:>14} {e.key}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with Store.open(_config(args)) as store:
        if not store.remove(args.key):
            print(f"oca store rm: {args.key}: not in the store", file=sys.stderr)
            return 1
    print(f"removed {args.key}")
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    with Store.open(_config(args), cleanup=True) as store:
        entry = store.move(args.key, args.tier)
    print(f"{entry.key} is on {entry.disk}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    with Store.open(_config(args)) as store:
        for result in store.verify(args.key):
            bad += result.status != "ok"
            if args.json:
                print(json.dumps(asdict(result)))
            elif result.status != "ok":
                print(f"{result.status:11} {result.key}  {result.detail}")
    if not args.json:
        print(f"verify: {bad} problem(s)" if bad else "verify: all files match their sha256")
    return 1 if bad else 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    with Store.open(_config(args)) as store:
        count = store.rebuild(rehash=args.rehash)
        store.cleanup()
    print(f"rebuilt the index: {count} keys")
    return 0


def cmd_partials(args: argparse.Namespace) -> int:
    with Store.open(_config(args)) as store:
        if args.discard is not None:
            if not store.discard_partial(args.discard):
                print(f"oca store partials: {args.discard}: no partial download to discard "
                      "(none, or one being written now)", file=sys.stderr)
                return 1
            print(f"discarded the partial download of {args.discard}")
            return 0
        for part in store.partials():
            if args.json:
                print(json.dumps(asdict(part)))
            else:
                print(f"{part.disk:7} {part.have:>14} / {part.size:<14} {'in use' if part.in_use else 'idle':6} "
                      f"{part.key}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    with Store.open(_config(args)) as store:
        usage = store.usage()
    for u in usage:
        if args.json:
            print(json.dumps({**asdict(u), "path": str(u.path)}))
        else:
            print(f"{u.id:7} {u.state:7} {u.used:>16} / {u.capacity:<16} {u.path}  {u.reason}")
    return 0
