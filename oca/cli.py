"""`oca`: the appliance's command line (edge server, content store, reporter, URL tokens).

Each subcommand family lives in its own module with a `register(subparsers)` function; this module
only assembles them and turns configuration errors into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from oca import report_cli, serve_cli, store_cli
from oca.config import EXIT_CONFIG, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oca", description="OCA appliance: byte-range edge server over a tiered SSD/HDD store.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    store_cli.register(sub)
    report_cli.register(sub)
    serve_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"oca: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
