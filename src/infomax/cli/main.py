"""Entry point of the ``infomax`` command.

Each subcommand lives in its own module under :mod:`infomax.cli` and exposes three names:

- ``HELP``: one line shown in ``infomax --help``;
- ``add_arguments(parser)``: adds its options to an :class:`argparse.ArgumentParser`;
- ``run(args) -> int``: does the work and returns the exit status.

Modules import heavy dependencies (torch) inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from infomax import __version__

# name -> module; order is the order shown in --help
COMMANDS: dict[str, str] = {
    "train": "infomax.cli.train",
    "eval": "infomax.cli.evaluate",
    "neighbors": "infomax.cli.neighbors",
    "embed": "infomax.cli.embed",
    "index": "infomax.cli.index",
    "search": "infomax.cli.search",
    "serve": "infomax.cli.serve",
    "mi": "infomax.cli.mi",
    "ica": "infomax.cli.ica",
}


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infomax",
        description=(
            "Learn representations by maximising mutual information (Deep InfoMax, AMDIM) "
            "and estimate mutual information between samples."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'infomax COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"infomax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)  # built in: a missing module is a bug
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # KEY=VALUE overrides may come after options (``train --config X a.b=1``): argparse leaves
    # such late positionals unparsed, so they join the command's overrides here
    args, extra = parser.parse_known_args(argv)
    args.argv = argv[1:]  # the command's own arguments, for commands that start workers
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        # bad input: library code raises these with a message naming the problem and the fix;
        # INFOMAX_DEBUG=1 shows the traceback instead
        if os.environ.get("INFOMAX_DEBUG"):
            raise
        print(f"infomax {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
