"""``edge-inspect run``: the appliance itself."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType

from ..app import build_inspector, open_devices
from ..config import load_config
from ..config.models import AppConfig
from ..events import PartResult, StatusSnapshot
from ..integrations.sdnotify import systemd_notify
from ..pipeline import Inspector
from ..report import build_report, collect, write_json_atomically
from ..services import start_services
from ..settings import SettingsStore, restore_settings

REPORT_PARTS = 10_000
"""The report's per-part ``results`` keep the last this many parts; its totals count every part."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the appliance (embedded demo config without --config)")
    parser.add_argument("--config", type=Path, help="config file (TOML); default: the embedded demo")
    parser.add_argument("--max-parts", type=int, metavar="N", help="stop after N parts")
    parser.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON run report at the end")
    parser.add_argument("--status-every-s", type=float, default=2.0, help="console status period, seconds")
    parser.add_argument(
        "--web-port", type=int, metavar="PORT", help="override web.port (0: any free port; the URL is logged)"
    )
    parser.set_defaults(func=run)


def status_line(s: StatusSnapshot) -> str:
    """One console line an operator can read at a glance."""
    p99 = "-" if s.latency.p99_ms is None else f"{s.latency.p99_ms:.1f}"
    yield_text = "-" if s.yield_percent is None else f"{s.yield_percent:.1f}%"
    fault = f" FAULT: {s.fault_reason}" if s.fault_reason else ""
    return (
        f"{s.state.value:8} parts={s.inspected} good={s.good} defect={s.defect} failsafe={s.failsafe} "
        f"rejected={s.rejected} missed_deadlines={s.missed_deadlines} yield={yield_text} "
        f"ppm={s.parts_per_minute:.0f} p99={p99}ms{fault}"
    )


def _restore(config: AppConfig, inspector: Inspector) -> None:
    """Apply the settings an admin saved before the restart; name each one, and audit it."""
    models_dir = config.web.model_dir or config.model.path.parent
    lines = restore_settings(inspector, SettingsStore(config.settings.path), models_dir)
    for line in lines:
        print(f"edge-inspect: settings from {config.settings.path}: {line}", flush=True)
    if lines:
        from ..web.audit import AuditLog  # the web view's audit trail, where the change was recorded

        AuditLog(config.web.db_path).record("system", "settings restored at start", None, "; ".join(lines))


def run(args: argparse.Namespace) -> int:
    if args.max_parts is not None and args.max_parts < 1:
        print("edge-inspect: --max-parts must be at least 1", file=sys.stderr)
        return 2
    config = load_config(args.config)
    if args.web_port is not None:
        if not 0 <= args.web_port <= 65535:
            print(f"edge-inspect: --web-port {args.web_port} is not a port number (0-65535)", file=sys.stderr)
            return 2
        config = config.model_copy(update={"web": config.web.model_copy(update={"port": args.web_port})})
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_devices(config) as devices:
        inspector = build_inspector(config, devices)
        report_sub = inspector.subscribe("report", max_items=REPORT_PARTS) if args.report else None
        recent: deque[PartResult] = deque(maxlen=REPORT_PARTS)
        if config.settings.restore:
            _restore(config, inspector)
        if not inspector.classifier.metadata.selftest_probes:
            print(
                f"edge-inspect: warning: model {Path(getattr(inspector.classifier, 'path', config.model.path)).name} "
                "has no self-test probes and runs UNTESTED "
                "(record some: edge-inspect model set-meta MODEL --probe-image SAMPLE.png)",
                file=sys.stderr, flush=True,
            )
        with start_services(config, inspector), systemd_notify(inspector, os.environ):
            inspector.start(max_parts=args.max_parts)
            print(
                f"edge-inspect: inspecting with model {devices.classifier.metadata.model_name} "
                f"{devices.classifier.metadata.model_version}, threshold {inspector.threshold:.3f} "
                f"(Ctrl-C to stop)",
                flush=True,
            )
            next_status = time.monotonic() + args.status_every_s
            while not stop.is_set():
                if args.max_parts is not None and inspector.wait_until_done(timeout_s=0.1):
                    break
                stop.wait(0.1)
                if report_sub is not None:
                    recent.extend(collect(report_sub))
                if time.monotonic() >= next_status:
                    print(status_line(inspector.status()), flush=True)
                    next_status += args.status_every_s
            inspector.stop()
        status = inspector.status()
        print(status_line(status), flush=True)
        if args.report:
            if report_sub is not None:
                recent.extend(collect(report_sub))
            write_json_atomically(args.report, build_report(inspector, list(recent)))
            print(f"edge-inspect: report written to {args.report}")
        inspector.close()
    return 0
