"""The Modbus TCP handshake against a real pymodbus client over loopback, with a real Inspector."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BRIGHT, DARK, brightness_model_metadata, probe, write_brightness_model
from plc_helpers import Plc, level_folder, plc_config, running_appliance, wait_for

from edge_inspect.events import Verdict
from edge_inspect.plc import registers as reg
from edge_inspect.plc.handshake import wrap16

pytestmark = pytest.mark.slow


def test_whole_handshake_ties_each_result_to_its_trigger(model_path: Path, tmp_path: Path) -> None:
    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            wait_for(lambda: plc.status()["online"], what="online")
            assert not plc.status()["trigger_ready"]  # trigger_enable is off at start
            plc.set("trigger_enable", True)
            wait_for(lambda: plc.status()["trigger_ready"], what="trigger_ready")
            toggle = plc.status()["inspection_completed"]
            for expected_acquisition in (1, 2, 3):
                acquisition_id = plc.trigger()
                assert acquisition_id == expected_acquisition
                words = plc.take_result()
                (part,) = appliance.parts(1)
                assert words["result_inspection_id"] == wrap16(part.part_id)
                assert words["result_acquisition_id"] == acquisition_id
                assert words["result_code"] == reg.ResultCode.GOOD
                assert part.verdict is Verdict.GOOD
                assert words["result_failsafe_reason"] == 0
                assert 0 < words["result_defect_score"] < 5000
                assert words["result_latency"] > 0
                status = plc.status()
                assert status["inspection_completed"] is not toggle  # toggled once per part
                toggle = status["inspection_completed"]
                assert status["last_part_good"]
            words = wait_for(lambda: (w := plc.words())["inspected"] == 3 and w, what="counters")
            assert (words["good"], words["rejected"], words["failsafe"]) == (3, 0, 0)
            assert words["last_inspection_id"] == wrap16(part.part_id)
            assert words["run_state"] == 2 and words["error_code"] == 0
            appliance.assert_accounting()
            assert appliance.inspector.parts_finished == 3
            plc.set("reset_counters", True)
            wait_for(lambda: plc.words()["inspected"] == 0, what="counters reset")
            plc.set("reset_counters", False)
            assert appliance.inspector.status().inspected == 0
        finally:
            plc.close()


def test_trigger_over_modbus_makes_exactly_one_part(model_path: Path, tmp_path: Path) -> None:
    config = plc_config(model_path, level_folder(tmp_path / "bright", BRIGHT))
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            plc.set("trigger_enable", True)
            acquisition_id = plc.trigger()
            (part,) = appliance.parts(1)
            words = plc.take_result()
            assert part.verdict is Verdict.DEFECT and part.is_rejected
            assert words["result_inspection_id"] == wrap16(part.part_id)
            assert words["result_acquisition_id"] == acquisition_id
            assert words["result_code"] == reg.ResultCode.DEFECT and words["result_rejected"] == 1
            assert not plc.status()["last_part_good"]
            assert appliance.inspector.parts_started == 1  # the trigger is the only source of parts
            assert appliance.results.get(timeout_s=0) is None
        finally:
            plc.close()
        appliance.assert_accounting()


def test_plc_that_stops_acking_overruns_and_keeps_the_latest(model_path: Path, tmp_path: Path) -> None:
    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    parts = 12
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            plc.set("trigger_enable", True)
            acquisitions = [plc.trigger() for _ in range(parts)]
            finished = appliance.parts(parts)
            wait_for(lambda: plc.words()["results_dropped"] == parts - 8, what="overrun count")
            status = plc.status()
            assert status["results_overrun"] and status["results_valid"]
            words = plc.words()
            assert words["error_code"] == reg.ErrorCode.RESULTS_OVERRUN
            assert words["results_pending"] == 8
            drained = [plc.take_result() for _ in range(8)]
            ids = [w["result_inspection_id"] for w in drained]
            # the first (presented while the overrun happened) and the newest 7 survive
            assert ids == [wrap16(p.part_id) for p in [finished[0], *finished[-7:]]]
            assert drained[-1]["result_acquisition_id"] == acquisitions[-1]
            assert not plc.status()["results_valid"] and plc.words()["results_pending"] == 0
            assert plc.status()["results_overrun"]  # latched until clear_fault
            plc.set("clear_fault", True)
            wait_for(lambda: not plc.status()["results_overrun"], what="overrun cleared")
            assert plc.words()["error_code"] == 0
        finally:
            plc.close()
        appliance.assert_accounting()
        assert appliance.inspector.parts_finished == parts


def test_client_disconnecting_mid_transaction_loses_nothing(model_path: Path, tmp_path: Path) -> None:
    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    with running_appliance(config) as appliance:
        first = Plc(appliance.port)
        first.set("trigger_enable", True)
        first.set("trigger", True)  # the PLC goes away with trigger high and the result unread
        wait_for(lambda: first.status()["trigger_ack"], what="trigger_ack")
        (part,) = appliance.parts(1)
        wait_for(lambda: first.status()["results_valid"], what="results_valid")
        first.set("results_ack", True)  # ...and half an acknowledge: raised, never dropped
        first.client.close()
        second = Plc(appliance.port)
        try:
            assert second.coils()["trigger"] and second.coils()["results_ack"]  # levels persist, as on a wire
            assert not second.status()["results_valid"]
            second.set("trigger", False)
            second.set("results_ack", False)
            assert not second.status()["trigger_ack"]
            acquisition_id = second.trigger()
            words = second.take_result()
            (next_part,) = appliance.parts(1)
            assert words["result_inspection_id"] == wrap16(next_part.part_id) == wrap16(part.part_id + 1)
            assert words["result_acquisition_id"] == acquisition_id == 2
        finally:
            second.close()
        appliance.assert_accounting()


def test_bad_writes_get_modbus_exceptions_and_change_nothing(model_path: Path, tmp_path: Path) -> None:
    from pymodbus.constants import ExcCodes

    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            plc.set("trigger_enable", True)
            plc.trigger()
            plc.take_result()
            wait_for(lambda: plc.words()["inspected"] == 1, what="one part counted")
            before = (plc.coils(), plc.words(), plc.client.read_holding_registers(0, count=1, device_id=1).registers)
            client = plc.client
            refusals = [
                (client.write_coil(7, True, device_id=1), ExcCodes.ILLEGAL_ADDRESS),  # reserved coil
                (client.write_coils(3, [True, True, True], device_id=1), ExcCodes.ILLEGAL_ADDRESS),  # runs past
                (client.write_register(1, 1, device_id=1), ExcCodes.ILLEGAL_ADDRESS),  # unlisted register
                (client.write_registers(0, [0, 1], device_id=1), ExcCodes.ILLEGAL_ADDRESS),
                (client.write_register(0, 9, device_id=1), ExcCodes.ILLEGAL_VALUE),  # unconfigured model
                (client.read_input_registers(0, count=reg.table_size("input_register") + 1, device_id=1),
                 ExcCodes.ILLEGAL_ADDRESS),
                (client.read_coils(10, count=10, device_id=1), ExcCodes.ILLEGAL_ADDRESS),
            ]
            for response, code in refusals:
                assert response.isError() and response.exception_code == code, response
            after = (plc.coils(), plc.words(), plc.client.read_holding_registers(0, count=1, device_id=1).registers)
            assert after == before  # reset_counters (coil 3) was not pulsed by the refused multi-write
        finally:
            plc.close()
        appliance.assert_accounting()


def test_refused_triggers_are_signalled_not_parts(model_path: Path, tmp_path: Path) -> None:
    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            plc.set("trigger", True)  # trigger_enable is off
            wait_for(lambda: plc.status()["missed_acquisition"], what="missed_acquisition")
            assert not plc.status()["trigger_ack"]
            assert plc.words()["error_code"] == reg.ErrorCode.TRIGGER_DISABLED
            assert plc.words()["acquisition_id"] == 0
            plc.set("trigger", False)
            plc.set("clear_fault", True)
            wait_for(lambda: not plc.status()["missed_acquisition"], what="cleared")
            assert plc.words()["error_code"] == 0
            assert appliance.inspector.parts_started == 0
        finally:
            plc.close()
        appliance.assert_accounting()


def test_model_select_by_number_swaps_between_parts(model_path: Path, tmp_path: Path) -> None:
    other = write_brightness_model(
        tmp_path / "other.onnx",
        brightness_model_metadata(model_name="other", selftest_probes=(probe(DARK), probe(BRIGHT))),
    )
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK),
                        plc={"models": {"1": str(other), "2": str(broken)}})
    with running_appliance(config) as appliance:
        plc = Plc(appliance.port)
        try:
            plc.set("trigger_enable", True)
            assert plc.words()["model_id"] == 0
            assert not plc.client.write_register(0, 1, device_id=1).isError()
            wait_for(lambda: plc.words()["model_id"] == 1 and not plc.status()["model_loading"], what="model 1")
            assert appliance.inspector.status().model_name == "other"
            plc.trigger()
            (part,) = appliance.parts(1)
            assert part.model_name == "other"
            assert not plc.client.write_register(0, 2, device_id=1).isError()  # configured, but broken
            wait_for(lambda: plc.words()["error_code"] == reg.ErrorCode.MODEL_LOAD_FAILED, what="load failure")
            assert plc.words()["model_id"] == 1 and appliance.inspector.status().model_name == "other"
            assert not plc.client.write_register(0, 0, device_id=1).isError()
            wait_for(lambda: plc.words()["model_id"] == 0, what="back to model.path")
            assert appliance.inspector.status().model_name == "brightness"
            plc.take_result()
        finally:
            plc.close()
        appliance.assert_accounting()


def test_service_registry_starts_the_plc_service(model_path: Path, tmp_path: Path) -> None:
    from edge_inspect.plc.service import PlcService
    from edge_inspect.services import start_services
    from edge_inspect.triggers.modbus import ModbusTrigger

    from conftest import build_inspector  # isort: skip

    config = plc_config(model_path, level_folder(tmp_path / "dark", DARK))
    inspector = build_inspector(config, trigger=ModbusTrigger())
    with inspector, start_services(config, inspector) as running:
        service = running["plc"]
        assert isinstance(service, PlcService) and service.modbus is not None and service.opcua is None
        plc = Plc(service.modbus.port or 0)
        try:
            plc.set("trigger_enable", True)
            plc.set("trigger", True)  # inspection not started: refused, signalled
            wait_for(lambda: plc.words()["error_code"] == reg.ErrorCode.TRIGGER_NOT_RUNNING, what="refusal")
            assert plc.status()["missed_acquisition"] and not plc.status()["online"]
        finally:
            plc.close()
    assert inspector.parts_started == 0
