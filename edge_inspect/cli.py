"""The ``edge-inspect`` command: parses arguments, wires parts together, turns errors into exit codes.

Exit codes: 0 success, 1 a check or run failed, 2 bad configuration or usage, 3 a device or model could
not be opened. Expected errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__, commands
from .errors import ConfigError, EdgeInspectError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DEVICE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-inspect", description="Edge defect-inspection appliance.")
    parser.add_argument("--version", action="version", version=f"edge-inspect {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        code: int = args.func(args)
        return code
    except ConfigError as error:
        print(f"edge-inspect: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except EdgeInspectError as error:
        print(f"edge-inspect: {error}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
