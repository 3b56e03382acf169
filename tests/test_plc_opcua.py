"""The OPC UA server against a real asyncua client over loopback: browse, results, events, security."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DARK, make_config
from plc_helpers import WAIT_S, level_folder, wait_for

from edge_inspect.config import AppConfig
from edge_inspect.plc.opcua_server import NAMESPACE
from edge_inspect.plc.service import PlcService
from edge_inspect.triggers import SoftwareTrigger
from edge_inspect.web.audit import AuditLog
from edge_inspect.web.users import UserStore

from conftest import build_inspector  # isort: skip

pytestmark = pytest.mark.slow

ADMIN, VIEWER, PASSWORD = "admin1", "viewer1", "correct horse battery"


def opcua_config(model: Path, frames: Path, tmp_path: Path) -> AppConfig:
    db = tmp_path / "web.sqlite"
    users = UserStore(db)
    users.add(ADMIN, PASSWORD, "admin")
    users.add(VIEWER, PASSWORD, "viewer")
    return make_config(
        model, frames,
        trigger={"mode": "triggered", "input": {"type": "software"}},
        web={"enabled": False, "db_path": str(db)},
        plc={"opcua": {"enabled": True, "port": 0, "security": ["none", "sign_and_encrypt"],
                       "certificate_path": str(tmp_path / "pki" / "cert.der"),
                       "private_key_path": str(tmp_path / "pki" / "key.pem")}},
    )


@contextlib.contextmanager
def appliance(config: AppConfig) -> Iterator[tuple[Any, PlcService, Any]]:
    inspector = build_inspector(config, trigger=SoftwareTrigger())
    results = inspector.subscribe("test", max_items=100)
    service = PlcService(config, inspector)
    service.start()
    inspector.start()
    try:
        yield inspector, service, results
    finally:
        inspector.stop()
        service.close()
        inspector.close()


def client_for(service: PlcService, user: str | None = None) -> Any:
    from asyncua import Client

    client = Client(service.opcua.endpoint_url, timeout=WAIT_S)
    if user is not None:
        client.set_user(user)
        client.set_password(PASSWORD)
    return client


async def vision_system(client: Any) -> tuple[int, Any]:
    idx = await client.get_namespace_index(NAMESPACE)
    return idx, await client.nodes.objects.get_child([f"{idx}:VisionSystem"])


async def read(client: Any, *path: str) -> Any:
    idx, vision = await vision_system(client)
    node = await vision.get_child([f"{idx}:{p}" for p in path])
    return await node.read_value()


def assert_accounting(inspector: Any) -> None:
    wait_for(lambda: inspector.parts_started == inspector.parts_finished, what="parts to finish")
    status = inspector.status()
    assert inspector.parts_finished == status.good + status.defect + status.failsafe


def test_anonymous_client_browses_and_reads_results_and_events(model_path: Path, tmp_path: Path) -> None:
    config = opcua_config(model_path, level_folder(tmp_path / "dark", DARK), tmp_path)
    with appliance(config) as (inspector, service, results):

        async def scenario() -> None:
            events: list[Any] = []

            class Handler:
                def event_notification(self, event: Any) -> None:
                    events.append(event)

            async with client_for(service) as client:
                idx, vision = await vision_system(client)
                names = {(await child.read_browse_name()).Name for child in await vision.get_children()}
                assert {"VisionStateMachine", "RecipeManagement", "ResultManagement", "Counters",
                        "Start", "Stop", "ResetCounters", "SelectModel"} <= names
                for _ in range(200):
                    if await read(client, "VisionStateMachine", "CurrentState") == "Operational":
                        break
                    await asyncio.sleep(0.05)
                assert await read(client, "VisionStateMachine", "CurrentState") == "Operational"
                assert await read(client, "RecipeManagement", "CurrentRecipe") == "brightness test-1"
                event_type = await client.nodes.base_event_type.get_child([f"{idx}:ResultReadyEventType"])
                subscription = await client.create_subscription(20, Handler())
                await subscription.subscribe_events(vision, event_type)
                inspector.software_trigger()
                part = await asyncio.get_running_loop().run_in_executor(None, results.get, WAIT_S)
                assert part is not None
                for _ in range(400):
                    if events:
                        break
                    await asyncio.sleep(0.05)
                assert len(events) == 1
                assert events[0].ResultId == part.inspection_id and events[0].IsPartGood is True
                assert await read(client, "ResultManagement", "LastResult", "ResultId") == part.inspection_id
                assert await read(client, "ResultManagement", "LastResult", "InspectionId") == part.part_id
                for _ in range(200):
                    if await read(client, "Counters", "Inspected") == 1:
                        break
                    await asyncio.sleep(0.05)
                assert await read(client, "Counters", "Good") == 1
                await subscription.delete()

        asyncio.run(scenario())
        assert_accounting(inspector)


def test_writes_and_methods_need_an_admin(model_path: Path, tmp_path: Path) -> None:
    from asyncua import ua

    config = opcua_config(model_path, level_folder(tmp_path / "dark", DARK), tmp_path)
    with appliance(config) as (inspector, service, results):
        inspector.software_trigger()
        assert results.get(timeout_s=WAIT_S) is not None
        wait_for(lambda: inspector.status().inspected == 1, what="one part counted")

        async def scenario() -> None:
            for user in (None, VIEWER):
                async with client_for(service, user) as client:
                    idx, vision = await vision_system(client)
                    state = await vision.get_child([f"{idx}:VisionStateMachine", f"{idx}:CurrentState"])
                    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                        await state.write_value("Halted")
                    for method in ("ResetCounters", "Stop"):
                        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                            await vision.call_method(f"{idx}:{method}")
            wrong = client_for(service, ADMIN)
            wrong.set_password("not the password")
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                async with wrong:
                    pass
            assert inspector.status().inspected == 1 and inspector.state.value == "RUNNING"
            async with client_for(service, ADMIN) as client:
                idx, vision = await vision_system(client)
                state = await vision.get_child([f"{idx}:VisionStateMachine", f"{idx}:CurrentState"])
                with pytest.raises(ua.UaStatusCodeError):  # read-only even for an admin
                    await state.write_value("Halted")
                await vision.call_method(f"{idx}:ResetCounters")
                with pytest.raises(ua.uaerrors.BadInvalidArgument):
                    await vision.call_method(f"{idx}:SelectModel", ua.Variant(9, ua.VariantType.UInt16))

        asyncio.run(scenario())
        assert inspector.status().inspected == 0
        actions = [(e.user, e.action) for e in AuditLog(config.web.db_path).recent()]
        assert actions == [(ADMIN, "opcua ResetCounters")]


def test_admin_over_sign_and_encrypt_stops_and_starts(model_path: Path, tmp_path: Path) -> None:
    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = cert_gen.generate_private_key()
    client_uri = "urn:edge-inspect:test-client"
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "test client", {}, [x509.UniformResourceIdentifier(client_uri)], [ExtendedKeyUsageOID.CLIENT_AUTH])
    (tmp_path / "client-key.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    (tmp_path / "client-cert.der").write_bytes(cert.public_bytes(Encoding.DER))
    config = opcua_config(model_path, level_folder(tmp_path / "dark", DARK), tmp_path)
    with appliance(config) as (inspector, service, results):

        async def scenario() -> None:
            client = client_for(service, ADMIN)
            client.application_uri = client_uri
            await client.set_security_string(
                f"Basic256Sha256,SignAndEncrypt,{tmp_path / 'client-cert.der'},{tmp_path / 'client-key.pem'}")
            async with client:
                idx, vision = await vision_system(client)
                await vision.call_method(f"{idx}:Stop")
                assert inspector.state.value == "STOPPED"
                for _ in range(200):
                    if await read(client, "VisionStateMachine", "CurrentState") == "Halted":
                        break
                    await asyncio.sleep(0.05)
                assert await read(client, "VisionStateMachine", "CurrentState") == "Halted"
                await vision.call_method(f"{idx}:Start")
                wait_for(lambda: inspector.state.value == "RUNNING", what="RUNNING again")

        asyncio.run(scenario())
        inspector.software_trigger()
        assert results.get(timeout_s=WAIT_S) is not None
        assert_accounting(inspector)
    first = (tmp_path / "pki" / "cert.der").read_bytes()
    assert (tmp_path / "pki" / "key.pem").stat().st_mode & 0o777 == 0o600
    with appliance(config):
        assert (tmp_path / "pki" / "cert.der").read_bytes() == first  # kept across restarts
