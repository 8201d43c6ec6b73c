"""The ``brainleaks`` command: thin argument parsing on top of the library.

Every user-caused error (a ``BrainleaksError``) prints one line on stderr and exits with status 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .errors import BrainleaksError

log = logging.getLogger("brainleaks_lava")


# --------------------------------------------------------------------------------------------
# subcommands: each is (name, help, add_arguments(parser), run(args) -> int)
# --------------------------------------------------------------------------------------------

def _add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=["mnist", "att-faces"])
    p.add_argument("--data-root", default=None,
                   help="directory with the dataset files (MNIST: the vendored subset when omitted)")


def _run_dataset(args) -> int:
    from .data import load_static

    for split in ("train", "val"):
        ds = load_static(args.dataset, args.data_root, split=split)
        counts = {int(c): int((ds.labels == c).sum()) for c in sorted(set(ds.labels.tolist()))}
        print(f"{args.dataset} {split}: {len(ds.labels)} images of {ds.images.shape[1]}x{ds.images.shape[2]}, "
              f"{len(counts)} classes, per class {counts}  [{ds.source}]")
    return 0


COMMANDS = {
    "dataset": ("check a dataset directory and print its splits", _add_dataset, _run_dataset),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainleaks",
        description="Model-inversion attacks on lava-dl SNNs, replayed bit-exactly on Lava's fixed-point simulator.",
    )
    parser.add_argument("--version", action="version", version=f"brainleaks-lava {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show info logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add, _run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.DEBUG if args.debug else (logging.INFO if args.verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    run = COMMANDS[args.command][2]
    try:
        return int(run(args) or 0)
    except BrainleaksError as e:
        if args.debug:
            raise
        msg = " ".join(str(e).split())
        print(f"brainleaks {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"brainleaks {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
