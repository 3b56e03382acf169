"""``edge-inspect user add|passwd|remove`` leave the same audit trail as a change in the web view."""

from __future__ import annotations

import getpass
import io
from pathlib import Path

import pytest

from edge_inspect.cli import main
from edge_inspect.web import AuditLog


def test_user_commands_are_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "web.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-password-1\n"))
    assert main(["user", "--db", str(db), "add", "alice", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-password-2\n"))
    assert main(["user", "--db", str(db), "passwd", "alice", "--password-stdin"]) == 0
    assert main(["user", "--db", str(db), "remove", "alice"]) == 0
    entries = list(reversed(AuditLog(db).recent(10)))
    who = f"{getpass.getuser()} (command line)"
    assert [(e.user, e.action, e.old_value, e.new_value, e.client) for e in entries] == [
        (who, "user add", None, "alice (admin)", "local"),
        (who, "user passwd", "alice", "new password", "local"),
        (who, "user remove", "alice", None, "local"),
    ]
    assert all("alice-password" not in str(vars(e)) for e in entries)  # never the password


def test_a_refused_user_add_is_not_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "web.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "--db", str(db), "add", "bob", "--role", "admin", "--password-stdin"]) == 2
    assert AuditLog(db).recent(10) == []
