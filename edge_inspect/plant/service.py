"""The plant layer as a service of ``edge-inspect run``: sync the defect log, take rolled-out models."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..config.models import AppConfig
from ..errors import ConfigError
from .objects import ObjectStore
from .rollout import ModelRollout
from .sync import ALARM_KEY, SUBSCRIPTION_NAME, ApplianceState, PlantSync, default_appliance_id

log = logging.getLogger(__name__)


def inspector_alarm(inspector: Any) -> Callable[[str | None], None]:
    """Forward the sync's alarm (parts lost to retention) to the inspector's ALARM output and status."""

    def on_alarm(reason: str | None) -> None:
        if reason is not None:
            inspector.raise_alarm(ALARM_KEY, reason)
        else:
            inspector.clear_alarm(ALARM_KEY)

    return on_alarm


@dataclass
class PlantLink:
    """The running sync and rollout of one appliance."""

    sync: PlantSync
    rollout: ModelRollout


def appliance_state(inspector: Any, rollout: ModelRollout) -> Callable[[], ApplianceState]:
    def state() -> ApplianceState:
        status = inspector.status()
        found = ApplianceState()
        found.state = status.state.value
        found.reason = status.fault_reason or ("; ".join(status.alarms.values()) or None)
        found.model_name, found.model_version = status.model_name, status.model_version
        found.model_sha256 = rollout.current_sha
        return found

    return state


@contextlib.contextmanager
def plant_service(config: AppConfig, inspector: Any) -> Iterator[PlantLink]:
    """Service factory (see edge_inspect.services): sync and rollout while the appliance runs."""
    if not config.defect_log.enabled:
        raise ConfigError("plant.enabled needs defect_log.enabled: the plant is fed from the local defect log")
    from ..web.audit import AuditLog

    plant = config.plant
    store = ObjectStore(plant)
    rollout = ModelRollout(
        plant, default_appliance_id(plant), inspector, config.model, store=store, audit=AuditLog(config.web.db_path)
    )
    subscription = inspector.subscribe(SUBSCRIPTION_NAME, plant.queue_items)
    sync = PlantSync(
        plant,
        config.defect_log.data_dir,
        source=subscription,
        store=store,
        on_alarm=inspector_alarm(inspector),
        state=appliance_state(inspector, rollout),
        observers=[rollout.observe],
    )
    sync.start()
    rollout.start()
    log.info("plant: syncing as %s (line %s) to %s", sync.appliance_id, plant.line, plant.database_url)
    try:
        yield PlantLink(sync, rollout)
    finally:
        rollout.close()
        sync.close()
        with contextlib.suppress(Exception):
            rollout.flush()
        inspector.bus.unsubscribe(subscription)
