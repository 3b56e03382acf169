"""Users, the audit log, the secret key file, login throttling and the ``edge-inspect user`` command."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from edge_inspect.cli import main
from edge_inspect.errors import ConfigError, EdgeInspectError
from edge_inspect.web import AuditLog, UserError, UserStore
from edge_inspect.web.security import (
    LoginThrottle,
    is_local_host_header,
    is_loopback,
    load_or_create_secret_key,
)


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "var" / "web.sqlite")


def test_add_and_verify(store: UserStore) -> None:
    user = store.add("alice", "alice-password-1", "admin")
    assert (user.name, user.role) == ("alice", "admin")
    assert store.verify("alice", "alice-password-1") == store.get("alice")
    assert store.verify("alice", "wrong-password-1") is None
    assert store.verify("nobody", "alice-password-1") is None
    assert store.has_admin()


def test_passwords_are_stored_hashed_in_an_owner_only_file(store: UserStore) -> None:
    store.add("alice", "alice-password-1", "admin")
    raw = store.path.read_bytes()
    assert b"alice-password-1" not in raw
    assert b"scrypt:" in raw or b"pbkdf2:" in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "name,password,role,message",
    [
        ("bad name", "long-enough-pw", "admin", "bad user name"),
        ("", "long-enough-pw", "admin", "bad user name"),
        ("-dash", "long-enough-pw", "admin", "bad user name"),
        ("bob", "short", "admin", "too short"),
        ("bob", " padded-password ", "admin", "spaces"),
        ("bob", "long-enough-pw", "root", "unknown role"),
    ],
)
def test_bad_users_are_refused(store: UserStore, name: str, password: str, role: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        store.add(name, password, role)
    assert store.all() == []


def test_user_errors_belong_to_the_error_root() -> None:
    assert issubclass(UserError, EdgeInspectError) and issubclass(UserError, ValueError)


def test_duplicate_names_are_refused(store: UserStore) -> None:
    store.add("alice", "alice-password-1", "viewer")
    with pytest.raises(UserError, match="already exists"):
        store.add("alice", "other-password-1", "admin")


def test_roles_rank(store: UserStore) -> None:
    admin = store.add("a", "a-password-123", "admin")
    qa = store.add("q", "q-password-123", "qa")
    viewer = store.add("v", "v-password-123", "viewer")
    assert admin.has_role("qa") and admin.has_role("viewer")
    assert qa.has_role("viewer") and not qa.has_role("admin")
    assert not viewer.has_role("qa")


def test_first_admin_only_while_none_exists(store: UserStore) -> None:
    store.add("v", "v-password-123", "viewer")
    assert not store.has_admin()
    store.add_first_admin("root", "root-password-1")
    with pytest.raises(UserError, match="already exists"):
        store.add_first_admin("second", "second-password")
    assert [u.name for u in store.all() if u.role == "admin"] == ["root"]


def test_password_change_and_removal(store: UserStore) -> None:
    store.add("alice", "alice-password-1", "admin")
    store.set_password("alice", "alice-password-2")
    user = store.get("alice")
    assert user is not None and user.session_epoch == 2
    assert store.verify("alice", "alice-password-1") is None
    assert store.verify("alice", "alice-password-2") is not None
    store.remove("alice")
    assert store.get("alice") is None
    with pytest.raises(UserError):
        store.remove("alice")
    with pytest.raises(UserError):
        store.set_password("alice", "alice-password-3")


def test_audit_log(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "web.sqlite")
    audit.record("alice", "threshold", 0.5, 0.7, client="127.0.0.1")
    audit.record("bob", "reset counters", "inspected=9", "0")
    entries = audit.recent(10)
    assert [(e.user, e.action, e.old_value, e.new_value) for e in entries] == [
        ("bob", "reset counters", "inspected=9", "0"),
        ("alice", "threshold", "0.5", "0.7"),
    ]
    assert entries[1].client == "127.0.0.1" and len(entries[1].when_text) == 19
    assert AuditLog(tmp_path / "web.sqlite").recent(1)[0].user == "bob"  # kept on disk


def test_secret_key_is_created_once_with_owner_only_mode(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret.key"
    key = load_or_create_secret_key(path)
    assert len(key) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret_key(path) == key
    assert load_or_create_secret_key(tmp_path / "other.key") != key


def test_secret_key_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("k" * 64)
    path.chmod(0o644)
    assert load_or_create_secret_key(path) == "k" * 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_short_secret_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("short")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter than"):
        load_or_create_secret_key(path)


def test_login_throttle_window() -> None:
    now = [100.0]
    throttle = LoginThrottle(max_failures=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after_s("ip:a") is None
        throttle.failed("ip:a", "user:x")
    assert throttle.retry_after_s("ip:a") == pytest.approx(60.0)
    assert throttle.retry_after_s("ip:b", "user:x") == pytest.approx(60.0)
    now[0] += 30.0
    assert throttle.retry_after_s("ip:a") == pytest.approx(30.0)
    now[0] += 30.1
    assert throttle.retry_after_s("ip:a", "user:x") is None
    throttle.failed("ip:a")
    throttle.succeeded("ip:a")
    assert throttle.retry_after_s("ip:a") is None


def test_login_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60.0)
    for i in range(LoginThrottle.MAX_KEYS + 500):
        throttle.failed(f"ip:{i}")
    assert len(throttle._failures) == LoginThrottle.MAX_KEYS


@pytest.mark.parametrize(
    "address,expected",
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("", False), (None, False), ("garbage", False)],
)
def test_is_loopback(address: str | None, expected: bool) -> None:
    assert is_loopback(address) is expected


@pytest.mark.parametrize(
    "host,expected",
    [("localhost:8080", True), ("127.0.0.1", True), ("[::1]:8080", True), ("LOCALHOST", True),
     ("evil.example:8080", False), ("127.0.0.1.evil.example", False), ("10.0.0.5:8080", False)],
)
def test_is_local_host_header(host: str, expected: bool) -> None:
    assert is_local_host_header(host) is expected


# ------------------------------------------------------------------------------------- CLI


def user_cli(db: Path, *args: str) -> int:
    return main(["user", "--db", str(db), *args])


def test_cli_add_list_passwd_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "users.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-password-1\n"))
    assert user_cli(db, "add", "alice", "--role", "admin", "--password-stdin") == 0
    assert "added admin alice" in capsys.readouterr().out
    assert UserStore(db).verify("alice", "alice-password-1") is not None
    assert user_cli(db, "list") == 0
    assert "alice\tadmin" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-password-2\n"))
    assert user_cli(db, "passwd", "alice", "--password-stdin") == 0
    assert UserStore(db).verify("alice", "alice-password-2") is not None
    assert user_cli(db, "remove", "alice") == 0
    assert UserStore(db).all() == []


def test_cli_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "users.sqlite"
    answers = iter(["qa-password-123", "qa-password-123"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert user_cli(db, "add", "quinn", "--role", "qa") == 0
    mismatched = iter(["qa-password-123", "qa-password-456"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(mismatched))
    assert user_cli(db, "add", "other", "--role", "qa") == 2
    assert "differ" in capsys.readouterr().err
    assert [u.name for u in UserStore(db).all()] == ["quinn"]


def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "users.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert user_cli(db, "add", "bob", "--role", "admin", "--password-stdin") == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-inspect: password too short") and err.count("\n") == 1
    assert user_cli(db, "remove", "nobody") == 2
    assert user_cli(db, "list") == 0
    assert "no admin yet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["user", "--db", str(db), "add", "bob", "--role", "superuser"])


def test_cli_uses_the_configured_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "from-config.sqlite"
    config = tmp_path / "edge.toml"
    config.write_text(f"[line]\ntravel_delay_ms = 100\n[web]\ndb_path = '{db}'\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("viewer-password\n"))
    assert main(["user", "--config", str(config), "add", "vic", "--role", "viewer", "--password-stdin"]) == 0
    assert UserStore(db).get("vic") is not None
