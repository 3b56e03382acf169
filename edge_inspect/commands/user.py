"""``edge-inspect user``: add, list, re-password and remove web users (there is no default password)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..config import load_config

ROLES = ("viewer", "qa", "admin")  # mirrors edge_inspect.web.users.ROLES without importing Flask at CLI start


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("user", help="manage web view users (add the first admin here)")
    parser.add_argument("--config", type=Path, help="config file (TOML) naming web.db_path; default: the embedded demo")
    parser.add_argument("--db", type=Path, help="users SQLite file (overrides the config's web.db_path)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True, help="viewer (read-only), qa (reviews), admin (changes)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    passwd = actions.add_parser("passwd", help="set a new password (ends that user's logins)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    remove = actions.add_parser("remove", help="delete a user (ends their logins)")
    remove.add_argument("name")
    actions.add_parser("list", help="list users and roles")
    parser.set_defaults(func=run)


def read_new_password(from_stdin: bool) -> str | None:
    """A new password: one line of stdin, or typed twice at the terminal (None when the two differ)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        print("edge-inspect: the two passwords differ", file=sys.stderr)
        return None
    return first


def _operator() -> str:
    """Who ran the command, for the audit trail (the login name; the command line has no web user)."""
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):  # no passwd entry for this uid (a bare container)
        return "unknown (command line)"


def run(args: argparse.Namespace) -> int:
    from ..web.audit import AuditLog
    from ..web.users import UserError, UserStore

    web = load_config(args.config).web
    db_path = args.db or web.db_path
    store = UserStore(db_path, web.password_min_length)
    audit = AuditLog(db_path)  # the same trail as the web view's changes, in the same file
    try:
        if args.action == "list":
            for user in store.all():
                print(f"{user.name}\t{user.role}")
            if not store.has_admin():
                print("(no admin yet: edge-inspect user add NAME --role admin)", file=sys.stderr)
            return 0
        if args.action == "remove":
            store.remove(args.name)
            audit.record(_operator(), "user remove", args.name, None, client="local")
            print(f"edge-inspect: removed user {args.name}")
            return 0
        password = read_new_password(args.password_stdin)
        if password is None:
            return 2
        if args.action == "add":
            store.add(args.name, password, args.role)
            audit.record(_operator(), "user add", None, f"{args.name} ({args.role})", client="local")
            print(f"edge-inspect: added {args.role} {args.name} to {db_path}")
        else:
            store.set_password(args.name, password)
            audit.record(_operator(), "user passwd", args.name, "new password", client="local")
            print(f"edge-inspect: new password set for {args.name}; their open sessions have ended")
        return 0
    except UserError as error:
        print(f"edge-inspect: {error}", file=sys.stderr)
        return 2
