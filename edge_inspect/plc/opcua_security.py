"""OPC UA security: the web view's users and roles, a permission ruleset, the appliance's certificate.

- Anyone may connect, browse, read and subscribe (anonymous included): the address space is
  browsable by any client.
- Writes and method calls need an ``admin`` of the web view's user store (edge_inspect/web/users.py);
  ``viewer`` and ``qa`` users read only. Address-space changes (AddNodes, ...) are refused to all.
- The certificate (self-signed, 10 years, the application URI in its SAN) and key are generated
  once and kept (key mode 0600), so clients can pin the appliance across restarts.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import os
import socket
from pathlib import Path
from typing import Any

from ..errors import FieldbusError

CERT_DAYS = 3650
current_user: contextvars.ContextVar[str] = contextvars.ContextVar("opcua_user", default="anonymous")
"""Name of the user whose request is being served (set by the ruleset, read by method callbacks)."""


def _web_user_class() -> Any:
    from asyncua.crypto.permission_rules import User

    @dataclasses.dataclass
    class _WebUser(User):
        """An asyncua user that remembers whether the web view made it an admin (for this session)."""

        is_admin: bool = False

    return _WebUser


class WebUserManager:
    """asyncua user manager over the web view's UserStore: user names, passwords and roles."""

    def __init__(self, users_db_path: Path, password_min_length: int = 10) -> None:
        from ..web.users import UserStore

        self.store = UserStore(users_db_path, password_min_length)
        self.refused = 0
        self._user_class = _web_user_class()

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        WebUser = self._user_class
        if username is None:
            return User(role=UserRole.Anonymous, name="anonymous")
        user = self.store.verify(username, password or "")
        if user is None:
            self.refused += 1
            return None  # asyncua answers BadUserAccessDenied
        # Never asyncua's Admin role: it bypasses every node's access level (and may rewrite attributes).
        # A web admin is an asyncua User the ruleset lets write and call.
        return WebUser(role=UserRole.User, name=user.name, is_admin=user.has_role("admin"))


def build_ruleset() -> Any:
    """Read for everybody, write and call for web admins, address-space changes for nobody."""
    from asyncua import ua
    from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset

    node_id: Any = ua.NodeId
    privileged = {node_id(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
                  node_id(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}
    readable = {node_id(t) for t in USER_TYPES} - privileged

    class AdminWritesRuleset(PermissionRuleset):
        """asyncua calls this before every request of a session."""

        def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
            name = getattr(user, "name", None) or "anonymous"
            current_user.set(name)
            if action_type_id in readable:
                return True
            return bool(action_type_id in privileged and getattr(user, "is_admin", False))

    return AdminWritesRuleset()


def ensure_certificate(cert_path: Path, key_path: Path, application_uri: str) -> None:
    """Generate and keep the appliance's certificate and key unless both exist and are valid."""
    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if cert_path.is_file() and key_path.is_file():
        try:
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        except ValueError as error:
            raise FieldbusError(f"plc.opcua.certificate_path {cert_path} is not a DER certificate: {error}") from None
        if cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc):
            return
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = cert_gen.generate_private_key()
        host = socket.gethostname()
        cert = cert_gen.generate_self_signed_app_certificate(
            key, f"edge-inspect@{host}", {"organizationName": "edge-inspect"},
            [x509.UniformResourceIdentifier(application_uri), x509.DNSName(host)],
            extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=CERT_DAYS,
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(cert_gen.dump_private_key_as_pem(key))
        from cryptography.hazmat.primitives.serialization import Encoding

        cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    except OSError as error:
        raise FieldbusError(f"plc.opcua: cannot write the certificate or key: {error}") from None
