"""The ``vpp`` command line. Each subcommand lives in its own module under
:mod:`vpp.commands` and offers ``register(subparsers)``; this file only lists them."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from vpp.errors import UserError

__all__ = ["UserError", "build_parser", "main"]

# Subcommand modules, in the order ``vpp --help`` lists them.
COMMANDS = (
    "dispatch",
    "run",
    "forecast",
    "simulate",
    "compare",
    "sweep",
    "carbon",
    "grid",
    "config",
    "db",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vpp",
        description="park-vpp: a grid-interactive virtual power plant controller for parks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"vpp.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vpp.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from vpp.commands import logs

    logs.configure(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # Alembic announces every plugin and migration step at INFO: noise before any answer.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # pandapower announces at INFO that plotly (which nothing here uses) is missing: it
        # reads as an error before every answer.
        logging.getLogger("pandapower").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"vpp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``vpp ... | head``): what it read is what it wanted. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
