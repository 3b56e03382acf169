"""The model in its own process (edge_inspect.inference_worker): same scores as in this process, verdicts
straight to the scheduler, a crash fail-safes and restarts, a swap moves to a new process, stop ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import (
    BRIGHT,
    DARK,
    brightness_model_metadata,
    build_inspector,
    make_config,
    probe,
    solid_image,
    thread_mode,
    write_brightness_model,
)
from plant_helpers import wait_for

from edge_inspect.classify import OnnxClassifier
from edge_inspect.errors import ModelError
from edge_inspect.events import PartResult, RunState, Verdict
from edge_inspect.inference_worker import InferenceWorker, wire
from edge_inspect.inference_worker import client as worker_client
from edge_inspect.inference_worker.client import Pending
from edge_inspect.pipeline import Inspector
from edge_inspect.report import collect


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


ROOMY_LINE = {"travel_delay_ms": 3000.0}
"""A budget no loaded test machine misses: the tests that want every part decided use it, with frames slow
enough (SLOW_FEED) that the inference queue cannot fill unless the model stalls for most of a second."""
SLOW_FEED = {"frames_per_second": 20.0}


def run_parts(inspector: Inspector, count: int) -> list[PartResult]:
    subscription = inspector.subscribe("test", max_items=10_000)
    inspector.start(max_parts=count)
    assert inspector.wait_until_done(60.0)
    inspector.stop()
    return collect(subscription)


def test_the_process_scores_every_part_as_the_model_here_does(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, line=ROOMY_LINE, source=SLOW_FEED)
    here = OnnxClassifier(model_path, warmup_runs=0)
    with build_inspector(config) as inspector:
        results = run_parts(inspector, 16)
        assert inspector.inference_mode.startswith("process: pid"), inspector.inference_mode
    assert len(results) == 16
    for result in results:
        assert result.verdict is not Verdict.FAILSAFE, result.failsafe_reason
        assert result.image is not None
        expected = here.classify(result.image)[0].defect_score
        assert result.regions[0].defect_score == expected  # the same tensor, the same session: the same float
        assert result.verdict is (Verdict.DEFECT if expected >= 0.5 else Verdict.GOOD)
        assert result.latency_ms is not None
    assert {r.verdict for r in results} == {Verdict.GOOD, Verdict.DEFECT}


def test_a_tiled_models_grid_comes_back_from_the_process(tmp_path: Path) -> None:
    meta = brightness_model_metadata(tile_size_px=32, tile_stride_px=16, selftest_probes=(probe(DARK),))
    model = write_brightness_model(tmp_path / "tiled.onnx", meta)
    frames = tmp_path / "frames"
    frames.mkdir()
    image = solid_image(DARK, 96, 64)
    image[0:32, 64:96] = BRIGHT  # one bright tile in the top-right corner
    import cv2

    cv2.imwrite(str(frames / "part.png"), image)
    config = make_config(model, frames, line=ROOMY_LINE, source=SLOW_FEED)
    with build_inspector(config) as inspector:
        results = run_parts(inspector, 3)
        assert inspector.inference_mode.startswith("process")
    expected = OnnxClassifier(model, warmup_runs=0).classify(image)[0]
    for result in results:
        assert result.verdict is Verdict.DEFECT
        region = result.regions[0]
        assert region.tile_scores is not None and expected.tile_scores is not None
        assert region.tile_scores.shape == (3, 5)
        np.testing.assert_array_equal(region.tile_scores, expected.tile_scores)


def test_a_killed_inference_process_fail_safes_its_parts_raises_a_fault_and_is_restarted(
    model_path: Path, replay_folder: Path,
) -> None:
    config = make_config(model_path, replay_folder, source={"frames_per_second": 100.0})
    conditions: list[tuple[str, str, str | None]] = []
    lock = threading.Lock()

    def record(kind: str, key: str, reason: str | None) -> None:
        with lock:
            conditions.append((kind, key, reason))

    with build_inspector(config) as inspector:
        inspector.condition_listeners.append(record)
        subscription = inspector.subscribe("test", max_items=100_000)
        inspector.start()
        wait_for(lambda: inspector.counters.good + inspector.counters.defect >= 20, what="decided parts")
        (first,) = inspector.inference_worker_pids()
        os.kill(first, signal.SIGKILL)

        def raised() -> bool:
            with lock:
                return any(k == "classifier" and r and "inference process ended" in r for _, k, r in conditions)

        wait_for(raised, what="the classifier fault")
        wait_for(lambda: inspector.inference_worker_pids() not in ([], [first]), what="a new inference process")
        (second,) = inspector.inference_worker_pids()
        decided_after = inspector.counters.good + inspector.counters.defect
        wait_for(lambda: inspector.counters.good + inspector.counters.defect >= decided_after + 20,
                 what="parts decided by the new process")

        def cleared() -> bool:
            with lock:
                keyed = [reason for _, key, reason in conditions if key == "classifier"]
            return bool(keyed) and keyed[-1] is None

        wait_for(cleared, what="the fault to clear")
        assert inspector.inference_mode.startswith(f"process: pid {second}")
        inspector.stop()
        results = collect(subscription)
    assert second != first
    assert not pid_alive(first) and not pid_alive(second)
    # every part was resolved once; none passed without a verdict
    assert len({r.part_id for r in results}) == len(results)
    assert all(r.verdict is not Verdict.FAILSAFE or r.is_rejected for r in results)


def test_a_swap_starts_a_process_for_the_new_model_and_ends_the_old_one(
    model_path: Path, replay_folder: Path, tmp_path: Path,
) -> None:
    config = make_config(model_path, replay_folder, source={"frames_per_second": 100.0}, line=ROOMY_LINE)
    # the same brightness graph with the opposite gain: every dark (good) frame now scores as a defect
    inverted = write_brightness_model(tmp_path / "inverted.onnx", brightness_model_metadata(model_version="inv"),
                                      gain=-20.0)
    with build_inspector(config) as inspector:
        subscription = inspector.subscribe("test", max_items=100_000)
        inspector.start()
        wait_for(lambda: inspector.counters.good >= 5, what="good parts")
        (old,) = inspector.inference_worker_pids()
        inspector.swap_classifier(OnnxClassifier(inverted, warmup_runs=0))
        wait_for(lambda: inspector.inference_worker_pids() not in ([old], []) and not pid_alive(old),
                 what="the old process to end")
        (new,) = inspector.inference_worker_pids()
        swapped_at = inspector.parts_started
        wait_for(lambda: inspector.parts_finished >= swapped_at + 30, what="parts after the swap")
        inspector.stop()
        results = collect(subscription)
    assert not pid_alive(new)
    after = [r for r in results if r.part_id > swapped_at + 3]
    assert after and all(r.model_version == "inv" for r in after)
    # dark frames score about 1 - sigmoid(-20 * (0.2 - 0.5)) under the inverted model: defects now
    # (a part that found the queue full on a loaded machine is a fail-safe, whichever model: not this test's business)
    dark = [r for r in after if r.image is not None and r.image.mean() < 128 and r.verdict is not Verdict.FAILSAFE]
    assert dark and all(r.verdict is Verdict.DEFECT for r in dark)
    assert len({r.part_id for r in results}) == len(results)


def test_where_the_process_cannot_serve_the_model_runs_here_and_says_why(
    model_path: Path, replay_folder: Path,
) -> None:
    asked_thread = make_config(model_path, replay_folder, inspection={"inference": "thread"}, line=ROOMY_LINE,
                               source=SLOW_FEED)
    with build_inspector(asked_thread) as inspector:
        results = run_parts(inspector, 4)
        assert inspector.inference_mode == "thread: inspection.inference is 'thread'"
        assert inspector.inference_worker_pids() == []
    assert all(r.verdict is not Verdict.FAILSAFE for r in results)
    scheduler_thread = thread_mode(make_config(model_path, replay_folder, line=ROOMY_LINE, source=SLOW_FEED))
    with build_inspector(scheduler_thread) as inspector:
        results = run_parts(inspector, 4)
        assert inspector.inference_mode.startswith("thread: the reject scheduler runs as a thread")
    assert all(r.verdict is not Verdict.FAILSAFE for r in results)


def test_a_model_the_process_refuses_stops_the_start_with_the_reason(
    model_path: Path, replay_folder: Path,
) -> None:
    config = make_config(model_path, replay_folder)
    inspector = build_inspector(config)
    model_path.write_bytes(b"not an onnx file")  # loaded here first; then the file changed under it
    with pytest.raises(ModelError, match=r"inference process: model file .* cannot be loaded"):
        inspector.start()
    assert inspector.inference_worker_pids() == []
    assert inspector.status().state is RunState.STOPPED
    inspector.close()


def test_requests_and_replies_survive_the_pipe_in_pieces() -> None:
    read_fd, write_fd = os.pipe()
    try:
        tensor = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
        grids = ((0, 1, 1), (1, 1, 1))
        for part in wire.encode_request(7, 12.5, 0.25, grids, tensor):
            os.write(write_fd, bytes(part))
        request = wire.read_request(read_fd, {})
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert request is not None
    assert (request.part_id, request.deadline_ts_s, request.threshold, request.tile_grids) == (7, 12.5, 0.25, grids)
    np.testing.assert_array_equal(request.tensor, tensor)
    with pytest.raises(ValueError, match="4-d float32"):
        wire.encode_request(1, 0.0, 0.5, None, tensor.astype(np.float64))

    maps = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    scored = wire.Reply(wire.SCORED, 9, 2, 1.5, 0.001, np.array([0.1, 0.9]), maps)
    data = wire.encode_reply(scored) + wire.encode_reply(wire.Reply(wire.FAILED, 10, text="onnx said no"))
    decoder = wire.ReplyDecoder()
    replies = [reply for i in range(0, len(data), 5) for reply in decoder.feed(data[i : i + 5])]
    assert [r.kind for r in replies] == [wire.SCORED, wire.FAILED]
    first, second = replies
    assert (first.part_id, first.verdict, first.decided_ts_s) == (9, 2, 1.5)
    assert first.scores is not None and first.maps is not None
    np.testing.assert_array_equal(first.scores, [0.1, 0.9])
    np.testing.assert_array_equal(first.maps, maps)
    assert (second.part_id, second.text) == (10, "onnx said no")


def test_the_model_process_runs_ahead_of_inspection_where_the_os_allows(
    model_path: Path, replay_folder: Path,
) -> None:
    config = make_config(model_path, replay_folder)
    with build_inspector(config) as inspector:
        inspector.start(max_parts=2)
        (pid,) = inspector.inference_worker_pids()
        nice = os.getpriority(os.PRIO_PROCESS, pid)
        assert inspector.wait_until_done(30.0)
        mode = inspector.inference_mode
    if os.geteuid() == 0:
        assert nice == -10 and mode.endswith("nice -10"), mode
    else:
        assert f"nice {nice}" in mode, mode


def test_a_refused_priority_is_said_and_the_process_still_serves() -> None:
    script = (
        "import os\n"
        "from edge_inspect.inference_worker.worker import apply_nice\n"
        "if os.geteuid() == 0:\n"
        "    os.setgid(65534); os.setuid(65534)  # nobody: no CAP_SYS_NICE\n"
        "print(apply_nice(-10))\n"
        "print(os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    said, nice = done.stdout.splitlines()
    if os.geteuid() != 0 and nice == "-10":
        pytest.skip("this user may lower its nice value (CAP_SYS_NICE or RLIMIT_NICE)")
    assert nice == "0"
    assert said.startswith("nice 0 (nice -10 refused: ") and "LimitNICE" in said, said


def test_a_stalled_inference_process_is_killed_and_replaced(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, source={"frames_per_second": 100.0})
    reasons: list[str] = []
    with build_inspector(config) as inspector:
        inspector.condition_listeners.append(
            lambda kind, key, reason: reasons.append(reason) if key == "classifier" and reason else None
        )
        inspector.INFERENCE_PROCESS_HUNG_S = 0.5
        inspector.start()
        wait_for(lambda: inspector.counters.good + inspector.counters.defect >= 10, what="decided parts")
        (first,) = inspector.inference_worker_pids()
        os.kill(first, signal.SIGSTOP)  # a run that never ends, as a hung driver would leave it
        wait_for(lambda: inspector.inference_worker_pids() not in ([], [first]), what="a replacement")
        decided = inspector.counters.good + inspector.counters.defect
        wait_for(lambda: inspector.counters.good + inspector.counters.defect >= decided + 10,
                 what="parts decided by the replacement")
        inspector.stop()
    assert not pid_alive(first)
    assert any("inference process ended (killed by signal 9)" in reason for reason in reasons), reasons


def test_the_parts_in_the_process_are_bounded_by_a_window_that_covers_its_model_time(model_path: Path) -> None:
    """A slot frees only when the replies are read: the submitter waits at the window, goes on once they
    are; and the window grows to WINDOW_S of the model's measured run time, within its bounds."""
    assert [worker_client.window_for(run_s) for run_s in (0.0, 0.05, 0.002, 0.0001)] == [
        worker_client.MIN_OUTSTANDING_PARTS, worker_client.MIN_OUTSTANDING_PARTS, 5,
        worker_client.MAX_OUTSTANDING_PARTS,
    ]
    classifier = OnnxClassifier(model_path, warmup_runs=0)
    prepared = classifier.prepare(solid_image(DARK))
    verdict_r, verdict_w = os.pipe()
    worker = InferenceWorker(classifier, str(model_path), verdict_w, providers=classifier.providers,
                             intra_op_threads=1, inter_op_threads=1, warmup_runs=0, verify_selftest=False)
    os.close(verdict_w)
    try:
        worker.await_ready()
        first_window = worker.window_parts()
        assert first_window == worker_client.MIN_OUTSTANDING_PARTS  # no answer yet says how long the model takes
        sent: list[int] = []

        def submit_parts(count: int) -> None:
            for part_id in range(count):
                job = SimpleNamespace(part_id=part_id, deadline_ts_s=float("inf"))
                worker.submit(Pending(job, prepared, 0.5), prepared.tile_grids, prepared.tensor,
                              lambda: True, lambda: None)
                sent.append(part_id)

        submitter = threading.Thread(target=submit_parts, args=(first_window + 2,), daemon=True)
        submitter.start()
        wait_for(lambda: len(sent) == first_window, timeout_s=10.0)
        # every part sent is answered in the pipe, unread: no room frees, so the submitter still waits
        answers: list[wire.Reply] = []
        wait_for(lambda: bool(answers.extend(worker.read_available()) or len(answers) >= first_window), timeout_s=10.0)
        assert submitter.is_alive() and len(sent) == first_window and len(worker.pending) == first_window
        freed = worker.answered(answers)
        assert [pending.job.part_id for _, pending in freed] == list(range(first_window))
        assert all(reply.kind == wire.SCORED and reply.run_s > 0 for reply, _ in freed)
        submitter.join(10.0)
        assert not submitter.is_alive() and sent == list(range(first_window + 2))
        run_times = [reply.run_s for reply, _ in freed]
        assert min(run_times) <= worker.model_run_s <= max(run_times)
        assert worker.window_parts() == worker_client.window_for(worker.model_run_s)
    finally:
        worker.close_requests()
        worker.wait(5.0)
        worker.read_available()
        os.close(verdict_r)
