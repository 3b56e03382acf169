"""OPC UA server modelled on OPC 40100-1 (Machine Vision), on asyncua in a thread and loop of its own.

Address space (namespace ``urn:edge-inspect:machine-vision``; docs/PLC.md has the full list):
``Objects/VisionSystem`` with ``VisionStateMachine`` (CurrentState: Preoperational, Operational,
Error, Halted; CurrentSubState; Reason), ``RecipeManagement`` (the model), ``ResultManagement``
(the last result and a ``ResultReadyEventType`` event per part), counters, and the methods Start,
Stop, ResetCounters and SelectModel. Results come from the server's own bounded bus subscription;
security is in opcua_security.py.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from typing import Any

from ..bus import Subscription
from ..config.models import AppConfig
from ..errors import FieldbusError
from ..events import PartResult, RunState, StatusSnapshot, Verdict
from ..pipeline import Inspector
from ..web.priority import lower_this_thread
from .handshake import wrap16
from .model_select import ModelSwitcher
from .opcua_security import WebUserManager, build_ruleset, current_user, ensure_certificate
from .registers import RESULT_CODES

log = logging.getLogger(__name__)

NAMESPACE = "urn:edge-inspect:machine-vision"
SUBSCRIPTION_NAME = "plc-opcua"
STATUS_PERIOD_S = 0.2
STATES = {RunState.STARTING: "Preoperational", RunState.RUNNING: "Operational",
          RunState.FAULT: "Error", RunState.STOPPED: "Halted"}


def sub_state(status: StatusSnapshot, mode: str, parts_in_flight: int) -> str:
    """Inside Operational (OPC 40100-1): Ready, SingleExecution (a part in flight), ContinuousExecution."""
    if status.state is not RunState.RUNNING:
        return ""
    if mode == "free_run":
        return "ContinuousExecution"
    return "SingleExecution" if parts_in_flight else "Ready"


class OpcuaServer:
    """Serves the VisionSystem object; ``start`` returns once the endpoint listens."""

    def __init__(self, config: AppConfig, inspector: Inspector, models: ModelSwitcher) -> None:
        self.config = config
        self.opcua = config.plc.opcua
        self.inspector = inspector
        self.models = models
        self.port: int | None = None
        self.endpoint_url = ""
        self.method_calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._subscription: Subscription[PartResult] | None = None
        self._nodes: dict[str, Any] = {}
        self._variants: dict[str, Any] = {}
        self._event: Any = None
        users_db = self.opcua.users_db_path or config.web.db_path
        self.users = WebUserManager(users_db, config.web.password_min_length)
        self._audit_path = self.opcua.audit_db_path or config.web.db_path

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        try:
            import asyncua  # noqa: F401
        except ImportError:
            raise FieldbusError("plc.opcua needs asyncua: pip install 'edge-inspect[plc]'") from None
        ensure_certificate(self.opcua.certificate_path, self.opcua.private_key_path, self.opcua.application_uri)
        self._subscription = self.inspector.subscribe(SUBSCRIPTION_NAME, self.config.plc.event_queue_items)
        self._thread = threading.Thread(target=self._run, name="ei-plc-opcua", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0) or self._error is not None:
            error = self._error or TimeoutError("no answer within 30 s")
            self.close()
            raise FieldbusError(f"plc.opcua: cannot serve on {self.opcua.host}:{self.opcua.port}: {error}")
        log.info("OPC UA: serving %s", self.endpoint_url)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and self._stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopping.set)
        if thread is not None:
            thread.join(timeout=10.0)
        self._thread = None
        if self._subscription is not None:
            self.inspector.bus.unsubscribe(self._subscription)
            self._subscription = None

    def _run(self) -> None:
        lower_this_thread(self.config.plc.thread_nice)
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start(); the thread ends
            self._error = error
            if not self._ready.is_set():
                self._ready.set()
            else:
                log.error("OPC UA server stopped: %r", error)
        finally:
            loop.close()

    async def _serve(self) -> None:
        from asyncua import Server, ua

        self._stopping = asyncio.Event()
        server = Server(user_manager=self.users)  # type: ignore[arg-type]  # duck-typed UserManager
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.opcua.host}:{self.opcua.port}/edge-inspect/")
        server.set_server_name("edge-inspect vision system")
        await server.set_application_uri(self.opcua.application_uri)
        await server.load_certificate(str(self.opcua.certificate_path))
        await server.load_private_key(str(self.opcua.private_key_path))
        policies = []
        if "sign_and_encrypt" in self.opcua.security:
            policies.append(ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)
        if "none" in self.opcua.security:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies, permission_ruleset=build_ruleset())
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        await self._build_address_space(server)
        async with server:
            self.port = server.bserver.port if server.bserver is not None else self.opcua.port
            self.endpoint_url = f"opc.tcp://{self.opcua.host}:{self.port}/edge-inspect/"
            self._ready.set()
            pump = asyncio.ensure_future(self._pump())
            await self._stopping.wait()
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                pass

    # ------------------------------------------------------------------ address space

    async def _build_address_space(self, server: Any) -> None:
        from asyncua import ua

        idx = await server.register_namespace(NAMESPACE)
        objects = server.nodes.objects
        vision = await objects.add_object(idx, "VisionSystem")
        states = await vision.add_object(idx, "VisionStateMachine")
        recipes = await vision.add_object(idx, "RecipeManagement")
        results = await vision.add_object(idx, "ResultManagement")
        last = await results.add_object(idx, "LastResult")
        counters = await vision.add_object(idx, "Counters")
        specs: list[tuple[Any, str, Any, ua.VariantType]] = [
            (states, "CurrentState", "Preoperational", ua.VariantType.String),
            (states, "CurrentSubState", "", ua.VariantType.String),
            (states, "Reason", "", ua.VariantType.String),
            (recipes, "CurrentRecipe", "", ua.VariantType.String),
            (recipes, "CurrentRecipeNumber", 0, ua.VariantType.UInt16),
            (recipes, "Threshold", 0.0, ua.VariantType.Double),
            (last, "ResultId", "", ua.VariantType.String),
            (last, "InspectionId", 0, ua.VariantType.UInt16),
            (last, "IsPartGood", False, ua.VariantType.Boolean),
            (last, "ResultCode", 0, ua.VariantType.UInt16),
            (last, "FailsafeReason", "", ua.VariantType.String),
            (last, "DefectScore", 0.0, ua.VariantType.Double),
            (last, "IsRejected", False, ua.VariantType.Boolean),
            (last, "LatencyMs", 0.0, ua.VariantType.Double),
            (last, "ResultTime", datetime.datetime.fromtimestamp(0, datetime.timezone.utc), ua.VariantType.DateTime),
        ]
        specs += [(counters, name, 0, ua.VariantType.UInt64)
                  for name in ("Inspected", "Good", "Defect", "Failsafe", "Rejected", "EventsDropped")]
        for parent, name, value, variant in specs:
            self._nodes[name] = await parent.add_variable(idx, name, ua.Variant(value, variant))
            self._variants[name] = variant
        await recipes.add_property(idx, "AvailableRecipes", ua.Variant(
            [f"0: {self.config.model.path}", *(f"{n}: {p}" for n, p in sorted(self.models.models.items()))],
            ua.VariantType.String))
        await vision.add_method(idx, "Start", self._start, [], [])
        await vision.add_method(idx, "Stop", self._stop, [], [])
        await vision.add_method(idx, "ResetCounters", self._reset_counters, [], [])
        await vision.add_method(idx, "SelectModel", self._select_model, [ua.VariantType.UInt16], [])
        event_type = await server.create_custom_event_type(idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, [
            ("ResultId", ua.VariantType.String), ("InspectionId", ua.VariantType.UInt16),
            ("IsPartGood", ua.VariantType.Boolean), ("DefectScore", ua.VariantType.Double),
            ("ResultTime", ua.VariantType.DateTime),
        ])
        self._event = await server.get_event_generator(event_type, vision)

    # ------------------------------------------------------------------ methods (admin only: opcua_security)

    async def _audited(self, action: str, new: object, work: Any) -> None:
        from ..web.audit import AuditLog

        user = current_user.get()
        self.method_calls += 1
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, work)
        await loop.run_in_executor(None, lambda: AuditLog(self._audit_path).record(
            user, f"opcua {action}", None, new, client="opcua"))

    async def _start(self, parent: Any) -> list[Any]:
        await self._audited("Start", None, self.inspector.start)
        return []

    async def _stop(self, parent: Any) -> list[Any]:
        await self._audited("Stop", None, self.inspector.stop)
        return []

    async def _reset_counters(self, parent: Any) -> list[Any]:
        await self._audited("ResetCounters", None, self.inspector.reset_counters)
        return []

    async def _select_model(self, parent: Any, number: Any) -> list[Any]:
        from asyncua import ua

        value = int(number.Value)
        if not self.models.is_known(value):
            refused: Any = ua.StatusCode(ua.StatusCodes.BadInvalidArgument)  # type: ignore[arg-type]
            return refused  # asyncua answers the call with this status
        await self._audited("SelectModel", value, lambda: self.models.request(value))
        return []

    # ------------------------------------------------------------------ results and status

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        subscription = self._subscription
        assert subscription is not None
        next_status_s = 0.0
        while True:
            result = await loop.run_in_executor(None, subscription.get, STATUS_PERIOD_S)
            if result is not None:
                await self._post_result(result)
            if loop.time() >= next_status_s:
                await self._post_status()
                next_status_s = loop.time() + STATUS_PERIOD_S

    async def _write(self, name: str, value: Any) -> None:
        await self._nodes[name].write_value(value, self._variants[name])

    async def _post_result(self, result: PartResult) -> None:
        from asyncua import ua

        score = max((r.defect_score for r in result.regions), default=0.0)
        when = datetime.datetime.fromtimestamp(result.capture_wall_time_s, datetime.timezone.utc)
        is_good = result.verdict is Verdict.GOOD
        values = {
            "ResultId": result.inspection_id, "InspectionId": wrap16(result.part_id), "IsPartGood": is_good,
            "ResultCode": int(RESULT_CODES[result.verdict]), "DefectScore": float(score),
            "FailsafeReason": result.failsafe_reason.value if result.failsafe_reason else "",
            "IsRejected": result.is_rejected, "LatencyMs": float(result.latency_ms or 0.0), "ResultTime": when,
        }
        for name, value in values.items():
            await self._write(name, value)
        event = self._event.event
        event.ResultId, event.InspectionId, event.IsPartGood = result.inspection_id, wrap16(result.part_id), is_good
        event.DefectScore, event.ResultTime = float(score), when
        event.Message = ua.LocalizedText(f"part {result.inspection_id}: {result.verdict.value}")
        await self._event.trigger()

    async def _post_status(self) -> None:
        status = self.inspector.status()
        in_flight = max(self.inspector.parts_started - self.inspector.parts_finished, 0)
        dropped = self._subscription.dropped if self._subscription is not None else 0
        values = {
            "CurrentState": STATES[status.state],
            "CurrentSubState": sub_state(status, self.config.trigger.mode, in_flight),
            "Reason": status.fault_reason or "",
            "CurrentRecipe": f"{status.model_name} {status.model_version}",
            "CurrentRecipeNumber": self.models.model_id, "Threshold": float(status.threshold),
            "Inspected": status.inspected, "Good": status.good, "Defect": status.defect,
            "Failsafe": status.failsafe, "Rejected": status.rejected, "EventsDropped": dropped,
        }
        for name, value in values.items():
            await self._write(name, value)
