"""``edge-inspect plc``: the PLC interfaces' register map (the same data docs/PLC.md shows)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("plc", help="PLC interfaces: print the Modbus register map")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    map_parser = actions.add_parser("map", help="the Modbus TCP register map (Markdown, or --json)")
    map_parser.add_argument("--json", action="store_true", help="one JSON object per signal")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plc.registers import map_as_json, map_as_markdown

    if args.json:
        print(json.dumps(map_as_json(), indent=2))
    else:
        print(map_as_markdown(), end="")
    return 0
