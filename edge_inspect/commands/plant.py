"""``edge-inspect plant``: migrate, serve the plant view, status, users, export, model publish, sync."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ConfigError

ROLES = ("viewer", "qa", "admin")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("plant", help="the plant layer: central records, plant view, model rollout")
    parser.add_argument("--config", type=Path, help="config file (TOML) with a [plant] section")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("migrate", help="create or upgrade the plant database schema (Alembic) and the bucket")
    serve = actions.add_parser("serve", help="serve the plant view (migrates first)")
    serve.add_argument("--host", help="listen address (default: plant.web_host)")
    serve.add_argument("--port", type=int, help="port (default: plant.web_port)")
    status = actions.add_parser("status", help="each appliance: last seen, parts and images synced, sync lag")
    status.add_argument("--json", action="store_true", help="JSON on stdout")
    user = actions.add_parser("user", help="plant view users (there is no default password)")
    user_actions = user.add_subparsers(dest="user_action", metavar="USER_ACTION", required=True)
    add = user_actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    passwd = user_actions.add_parser("passwd", help="set a new password (ends that user's logins)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    user_actions.add_parser("list", help="list users")
    remove = user_actions.add_parser("remove", help="delete a user")
    remove.add_argument("name")
    export = actions.add_parser("export", help="one training set (good/, defect/, CSV) from many lines")
    export.add_argument("--out", type=Path, required=True, help="new folder")
    export.add_argument("--line", action="append", default=[], help="only this line (repeatable)")
    export.add_argument("--model", help="only parts of this model version")
    export.add_argument("--since", help="from this time (ISO 8601, or 7d / 12h ago)")
    export.add_argument("--until", help="before this time")
    export.add_argument("--reviewed-only", action="store_true", help="only parts QA has reviewed")
    model = actions.add_parser("model", help="model rollout")
    model_actions = model.add_subparsers(dest="model_action", metavar="MODEL_ACTION", required=True)
    publish = model_actions.add_parser("publish", help="register a model and roll it out")
    publish.add_argument("model_file", type=Path)
    publish.add_argument("--to", required=True, help="an appliance id, a line, a group, or 'all'")
    publish.add_argument("--by", help="who publishes (default: the login name)")
    publish.add_argument("--no-verify", action="store_true", help="skip the local self-test (appliances still run it)")
    sync = actions.add_parser("sync", help="send this box's defect log backlog now (without inspecting)")
    sync.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.set_defaults(func=run)


def _plant(args: argparse.Namespace) -> Any:
    plant = load_config(args.config).plant
    if plant.database_url is None or plant.object_store_url is None:
        raise ConfigError("[plant] needs database_url and object_store_url for this command")
    return plant


def _db(plant: Any) -> Any:
    from ..plant.central import PlantDb
    from ..plant.connect import connect_db

    return PlantDb(lambda: connect_db(plant))


def run(args: argparse.Namespace) -> int:
    from ..plant.connect import PlantError

    try:
        return _ACTIONS[args.action](args)
    except PlantError as error:
        print(f"edge-inspect: {error}", file=sys.stderr)
        return 1


def _migrate(args: argparse.Namespace) -> int:
    from ..plant.migrate import HEAD, upgrade
    from ..plant.objects import ObjectStore

    plant = _plant(args)
    upgrade(plant)
    _ensure_bucket(ObjectStore(plant))
    print(f"edge-inspect: plant database at schema {HEAD}; bucket {plant.bucket} ready")
    return 0


def _ensure_bucket(store: Any) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from ..plant.connect import PlantError

    try:
        store.ensure_bucket()
    except (BotoCoreError, ClientError) as error:
        raise PlantError(f"object store: {error}") from None


def _serve(args: argparse.Namespace) -> int:
    import waitress

    from ..plant.migrate import upgrade
    from ..plant.objects import ObjectStore
    from ..plant.web import create_plant_app

    plant = _plant(args)
    upgrade(plant)
    store = ObjectStore(plant)
    _ensure_bucket(store)
    db = _db(plant)
    if not db.query("SELECT 1 FROM users LIMIT 1"):
        print("edge-inspect: no plant user yet: add one with edge-inspect plant user add NAME --role admin",
              file=sys.stderr)  # fmt: skip
    app = create_plant_app(plant, db, store)
    host, port = args.host or plant.web_host, args.port or plant.web_port
    print(f"edge-inspect: plant view on http://{host}:{port}/", flush=True)
    waitress.serve(app, host=host, port=port, threads=8, ident="edge-inspect-plant")
    return 0


def _status(args: argparse.Namespace) -> int:
    db = _db(_plant(args))
    appliances = db.appliances()
    if args.json:
        print(json.dumps({"appliances": [a.status_json() for a in appliances]}, indent=2))
        return 0
    now = time.time()
    print(f"{'appliance':20} {'line':10} {'state':8} {'last seen':20} {'parts':>9} {'images':>9} {'lag s':>8}")
    for a in appliances:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.last_seen_s))
        print(f"{a.id:20} {a.line:10} {a.shown_state(now):8} {seen:20} {a.parts_synced:>9} {a.images_synced:>9} "
              f"{a.sync_lag_s:>8.1f}")  # fmt: skip
    return 0


def _user(args: argparse.Namespace) -> int:
    from ..plant.users import PlantUserStore
    from ..web.users import UserError
    from .user import read_new_password

    store = PlantUserStore(_db(_plant(args)))
    try:
        if args.user_action == "list":
            for user in store.all():
                print(f"{user.name}\t{user.role}")
            return 0
        if args.user_action == "remove":
            store.remove(args.name)
            print(f"edge-inspect: removed plant user {args.name}")
            return 0
        password = read_new_password(args.password_stdin)
        if password is None:
            return 2
        if args.user_action == "add":
            store.add(args.name, password, args.role)
            print(f"edge-inspect: added plant {args.role} {args.name}")
        else:
            store.set_password(args.name, password)
            print(f"edge-inspect: new password set for {args.name}")
        return 0
    except UserError as error:
        print(f"edge-inspect: {error}", file=sys.stderr)
        return 2


def _time(text: str | None, flag: str) -> float | None:
    from ..defect_log.timespec import parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as error:
        raise ConfigError(f"{flag}: {error}") from None


def _export(args: argparse.Namespace) -> int:
    from ..plant.central import PlantFilter
    from ..plant.export import export_plant
    from ..plant.objects import ObjectStore

    plant = _plant(args)
    where = PlantFilter(
        since_s=_time(args.since, "--since"), until_s=_time(args.until, "--until"), lines=tuple(args.line),
        model_version=args.model, is_reviewed=True if args.reviewed_only else None,
    )  # fmt: skip
    summary = export_plant(_db(plant), ObjectStore(plant), args.out, where)
    print(f"edge-inspect: {summary.line()}")
    return 0 if summary.parts else 1


def _model(args: argparse.Namespace) -> int:
    from ..plant.publish import publish_model

    published = publish_model(_plant(args), args.model_file, args.to, who=args.by, verify=not args.no_verify)
    print(
        f"edge-inspect: published {published.name} {published.version} (sha256 {published.sha256}) as rollout "
        f"{published.rollout_id} to {published.target}: {len(published.appliances)} appliance(s) now, "
        f"{', '.join(published.appliances) or 'none yet'}"
    )
    return 0


def _sync(args: argparse.Namespace) -> int:
    from ..plant.sync import ApplianceState, PlantSync

    def state() -> ApplianceState:
        found = ApplianceState()
        found.state, found.reason = "STOPPED", "not inspecting: sending the backlog (edge-inspect plant sync)"
        return found

    config = load_config(args.config)
    plant = config.plant
    if plant.database_url is None or plant.object_store_url is None:
        raise ConfigError("[plant] needs database_url and object_store_url for this command")
    sync = PlantSync(plant, config.defect_log.data_dir, state=state)
    deadline = time.monotonic() + args.timeout
    delay_s = 0.2
    try:
        while time.monotonic() < deadline:
            if sync.sync_once() and sync.status.backlog_parts == 0:
                print(f"edge-inspect: synced; {sync.status.parts_sent} part(s) and {sync.status.images_sent} "
                      f"image(s) sent, {sync.status.lost_parts} lost to retention")  # fmt: skip
                return 0 if sync.status.lost_parts == 0 else 1
            time.sleep(delay_s if sync.status.is_connected else min(delay_s * 5, 5.0))
    finally:
        sync.close()
    print(f"edge-inspect: backlog not sent within {args.timeout:.0f} s: {sync.status.last_error}", file=sys.stderr)
    return 1


_ACTIONS = {
    "migrate": _migrate,
    "serve": _serve,
    "status": _status,
    "user": _user,
    "export": _export,
    "model": _model,
    "sync": _sync,
}
