"""Prometheus metrics: scraped through Flask's test client and parsed with prometheus_client's own parsers."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from conftest import SlowClassifier, build_inspector, make_config
from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from edge_inspect.classify import OnnxClassifier
from edge_inspect.config import AppConfig
from edge_inspect.integrations.metrics import metrics_blueprint
from edge_inspect.pipeline import Inspector


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder)


def run_parts(inspector: Inspector, parts: int) -> None:
    inspector.start(max_parts=parts)
    assert inspector.wait_until_done(20), "inspection did not finish"
    inspector.stop()


Samples = dict[str, dict[tuple[Any, ...], float]]


def scrape_app(app: Flask) -> Samples:
    """name -> {sorted label items: value}, from a real scrape of /metrics in the Prometheus text format."""
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(inspector: Inspector) -> Samples:
    app = Flask(__name__)
    app.register_blueprint(metrics_blueprint(inspector, registry=CollectorRegistry()))
    return scrape_app(app)


def one(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_counters_histograms_and_model_info_after_a_run(config: AppConfig) -> None:
    inspector = build_inspector(config)
    registry = CollectorRegistry()
    app = Flask(__name__)
    app.register_blueprint(metrics_blueprint(inspector, registry=registry))  # subscribes before the parts
    run_parts(inspector, 16)
    samples = scrape_app(app)
    # 12 good and 4 defects when every replay frame is read in time; a loaded machine skips frames and
    # misses 58 ms budgets, so the scrape must agree with what the inspector itself counted.
    status = inspector.status()
    decided = status.good + status.defect
    assert status.inspected == 16 and status.defect >= 1 and decided >= 1

    assert one(samples, "edge_inspect_parts_total", verdict="good") == status.good
    assert one(samples, "edge_inspect_parts_total", verdict="defect") == status.defect
    assert one(samples, "edge_inspect_parts_total", verdict="failsafe") == status.failsafe
    assert one(samples, "edge_inspect_parts_rejected_total") == status.rejected == status.defect + status.failsafe
    assert one(samples, "edge_inspect_reject_not_actuated_total") == 0
    assert {dict(k)["reason"] for k in samples["edge_inspect_failsafe_total"]} >= {"deadline", "queue_full"}
    assert sum(samples["edge_inspect_failsafe_total"].values()) == status.failsafe
    assert one(samples, "edge_inspect_missed_deadlines_total") == status.missed_deadlines
    assert one(samples, "edge_inspect_dropped_total", consumer="metrics") == 0
    assert one(samples, "edge_inspect_queue_depth", consumer="metrics") == 0
    assert one(samples, "edge_inspect_state", edge_inspect_state="STOPPED") == 1
    assert one(samples, "edge_inspect_state", edge_inspect_state="RUNNING") == 0
    info = dict(next(iter(samples["edge_inspect_model_info"])))
    assert (info["name"], info["version"], info["providers"]) == ("brightness", "test-1", "CPUExecutionProvider")
    assert one(samples, "edge_inspect_latency_budget_seconds") == pytest.approx(0.058)
    assert one(samples, "edge_inspect_yield_ratio") == pytest.approx(status.good / 16)
    assert inspector.inference_mode.startswith("process")  # so the replies thread beats too
    assert set(dict(k)["thread"] for k in samples["edge_inspect_loop_heartbeat_age_seconds"]) == {
        "capture", "prepare", "inference", "inference-replies", "actuator"
    }

    assert one(samples, "edge_inspect_inference_latency_seconds_count") == decided
    assert 0 < one(samples, "edge_inspect_inference_latency_seconds_sum") < decided * 0.058
    assert one(samples, "edge_inspect_end_to_end_latency_seconds_count") == status.rejected
    # each reject fires at capture + 60 ms, never earlier (how much later is the benchmark's business)
    assert one(samples, "edge_inspect_end_to_end_latency_seconds_sum") >= status.rejected * 0.060 - 1e-6
    assert one(samples, "edge_inspect_reject_late_seconds_count") == status.rejected
    buckets = sorted(
        (float(dict(k)["le"]), v) for k, v in samples["edge_inspect_inference_latency_seconds_bucket"].items()
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"), decided)
    assert dict(buckets)[0.1] == decided  # every verdict inside the 58 ms budget
    inspector.close()


def test_failsafe_reasons_and_missed_deadlines(config: AppConfig) -> None:
    inner = OnnxClassifier(config.model.path, warmup_runs=0)
    inspector = build_inspector(config, SlowClassifier(inner, delay_s=0.12))  # budget is 58 ms
    run_parts(inspector, 6)
    samples = scrape(inspector)
    reasons = {dict(k)["reason"]: v for k, v in samples["edge_inspect_failsafe_total"].items()}
    assert reasons["deadline"] + reasons["queue_full"] == 6
    assert one(samples, "edge_inspect_parts_total", verdict="failsafe") == 6
    assert one(samples, "edge_inspect_missed_deadlines_total") == reasons["deadline"] >= 1
    inspector.close()


def test_drops_and_depth_per_consumer(config: AppConfig) -> None:
    inspector = build_inspector(config)
    inspector.subscribe("stuck-consumer", max_items=1)  # never read: holds one, drops the rest
    run_parts(inspector, 8)
    samples = scrape(inspector)
    assert one(samples, "edge_inspect_dropped_total", consumer="stuck-consumer") == 7
    assert one(samples, "edge_inspect_queue_depth", consumer="stuck-consumer") == 1
    inspector.close()


def test_private_registry_by_default_and_openmetrics_on_request(config: AppConfig) -> None:
    inspector = build_inspector(config)
    apps = []
    for _ in range(2):  # two apps over one inspector: no duplicate-timeseries clash, nothing global
        app = Flask(__name__)
        app.register_blueprint(metrics_blueprint(inspector))
        apps.append(app)
    assert REGISTRY.get_sample_value("edge_inspect_parts_rejected_total") is None
    response = apps[1].test_client().get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.headers["Cache-Control"] == "no-store"
    names = {family.name for family in parse_openmetrics(response.get_data(as_text=True))}
    assert {"edge_inspect_parts", "edge_inspect_inference_latency_seconds", "edge_inspect_model"} <= names
    assert {"metrics", "metrics-2"} <= set(inspector.bus.depths())
    inspector.close()


def test_a_discarded_app_ends_its_recorder_thread(config: AppConfig) -> None:
    inspector = build_inspector(config)
    blueprint = metrics_blueprint(inspector)
    thread = blueprint.recorder._thread
    assert thread.is_alive()
    del blueprint
    gc.collect()
    thread.join(timeout=2.0)
    assert not thread.is_alive()
    inspector.close()
