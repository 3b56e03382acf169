"""Plant scale: N simulated appliances at R parts/s each into one PostgreSQL and one S3 bucket.

Each simulated appliance is what a real one runs: the defect-log writer recording parts into its own
SQLite file (every part is logged: sample_good_fraction = 1, so each part is a row), and the real
``PlantSync`` sending them. Appliances are threads, spread over worker processes. Measures the rows/s
PostgreSQL takes, the sync lag (capture to committed centrally) p50/p99, then fills the parts table to
``--view-parts`` rows and times the plant view's queries and pages. Starts its own throwaway PostgreSQL
cluster (Debian's binaries, run as the postgres user when root) and a moto S3 server on loopback.

    nice -n 5 .venv/bin/python benchmarks/bench_plant.py --appliances 100 --rate 20 --seconds 60
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster (tuned as a small dedicated server would be, fsync on)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("bench_plant: PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="ei-bench-pg-"))
        self.user = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self.user = "postgres"
        self.port = free_port()

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=300)

    def start(self) -> None:
        data = str(self.base / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=400 "
                   "-c shared_buffers=512MB -c synchronous_commit=on -c max_wal_size=4GB")  # fmt: skip
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-l", str(self.base / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def make_part(appliance: str, n: int, wall_s: float, with_image: bool) -> Any:
    from edge_inspect.events import PartResult, RegionResult, Verdict

    defect = with_image
    image = np.random.default_rng(n).integers(0, 256, (48, 64, 3), dtype=np.uint8) if with_image else None
    region = RegionResult("all", 0, 0, 64, 48, 0.9 if defect else 0.1, defect)
    return PartResult(
        part_id=n, inspection_id=f"{appliance}-{n}", frame_sequence=n, capture_ts_s=time.monotonic(),
        capture_wall_time_s=wall_s, verdict=Verdict.DEFECT if defect else Verdict.GOOD, failsafe_reason=None,
        is_rejected=defect, regions=(region,), threshold=0.5, model_name="bench", model_version="b-1",
        latency_ms=10.0, scheduled_fire_ts_s=time.monotonic() + 0.2, fired_ts_s=None, image=image,
    )  # fmt: skip


class NoSource:
    def get(self, timeout_s: float | None = None) -> None:
        return None


def worker(ids: list[str], plant: dict[str, Any], root: str, rate: float, seconds: float, image_fraction: float,
           results: Any) -> None:  # fmt: skip
    """One process: its appliances' writers (one thread) and their syncs (a thread each)."""
    from edge_inspect.config.defect_log import DefectLogConfig
    from edge_inspect.config.plant import PlantConfig
    from edge_inspect.defect_log import DefectLogWriter
    from edge_inspect.plant.sync import PlantSync

    writers, syncs = {}, []
    for appliance in ids:
        data = Path(root) / appliance
        log_config = DefectLogConfig(enabled=True, data_dir=data, sample_good_fraction=1.0, min_free_disk_mb=0)
        writers[appliance] = DefectLogWriter(log_config, NoSource())
        writers[appliance].open()
        config = PlantConfig(**{**plant, "appliance_id": appliance, "line": f"line-{int(appliance[4:]) % 20:02d}"})
        syncs.append(PlantSync(config, data))
    for sync in syncs:
        sync.start()
    tick_s = 0.25
    per_tick = rate * tick_s
    written, behind_s, owed = 0, 0.0, 0.0
    start = time.monotonic()
    next_tick = start
    stride = max(1, round(1 / image_fraction)) if image_fraction > 0 else 0
    while time.monotonic() - start < seconds:
        next_tick += tick_s
        owed += per_tick
        count = int(owed)
        owed -= count
        now = time.time()
        for appliance, writer in writers.items():
            batch = [make_part(appliance, written + i, now, bool(stride) and (written + i) % stride == 0)
                     for i in range(count)]  # fmt: skip
            writer.write_batch(batch)
        written += count
        lag = time.monotonic() - next_tick
        if lag > 0:
            behind_s = max(behind_s, lag)
        else:
            time.sleep(-lag)
    last_ids = {}
    for appliance, writer in writers.items():
        with writer._lock:
            last_ids[appliance] = writer._connection().execute("SELECT COALESCE(MAX(id), 0) FROM parts").fetchone()[0]
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline and any(s.cursor < last_ids[s.appliance_id] for s in syncs):
        time.sleep(0.5)
    for sync in syncs:
        sync.close()
    for writer in writers.values():
        writer.close()
    results.put({"written": written * len(ids), "writer_behind_s": behind_s,
                 "failures": sum(s.status.failures for s in syncs)})  # fmt: skip


def fill_parts(url: str, total: int, minute_days: int, filled: dict[str, float]) -> float:
    """Top the parts table up to ``total`` rows (synthetic, spread over 100 appliances and 30 days)."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT COUNT(*) FROM parts").fetchone()[0]  # type: ignore[index]
        ids = [r[0] for r in conn.execute("SELECT id FROM appliances ORDER BY id").fetchall()]
        missing = total - have
        now = time.time()
        chunk = 200_000
        for offset in range(0, max(missing, 0), chunk):
            n = min(chunk, missing - offset)
            conn.execute(
                "INSERT INTO parts (appliance_id, inspection_id, line, local_id, part_id, captured_at_s, verdict, "
                "is_rejected, is_sampled, max_score, regions, model_name, model_version, threshold, image_status) "
                "SELECT (%(ids)s::text[])[1 + g %% %(n_ids)s], 'fill-' || (%(offset)s + g), "
                "'line-' || lpad(((1 + g %% %(n_ids)s) %% 20)::text, 2, '0'), g, g, "
                "%(now)s - (g::float8 / %(n)s) * 30 * 86400, "
                "CASE WHEN g %% 20 = 0 THEN 'defect' ELSE 'good' END, g %% 20 = 0, false, (g %% 100) / 100.0, "
                "'[]'::jsonb, 'bench', CASE WHEN g %% 2 = 0 THEN 'b-1' ELSE 'b-2' END, 0.5, 'no_frame' "
                "FROM generate_series(1, %(n)s) AS g",
                {"ids": ids, "n_ids": len(ids), "offset": offset, "now": now, "n": n},
            )  # fmt: skip
        conn.execute("ANALYZE parts")
        minutes_from_s = time.perf_counter()
        minutes = minute_days * 24 * 60  # per-minute counts per appliance (the trigger keeps hour_counts)
        conn.execute(
            "INSERT INTO minute_counts (appliance_id, minute_start_s, line, good, defect, failsafe, rejected) "
            "SELECT a.id, (floor(%(now)s / 60) * 60)::bigint - m * 60, a.line, 1140 + m %% 7, 60, m %% 3, 60 "
            "FROM appliances a, generate_series(1, %(minutes)s) AS m ON CONFLICT DO NOTHING",
            {"now": now, "minutes": minutes},
        )
        filled["minute_rows"] = len(ids) * minutes
        filled["minute_fill_s"] = time.perf_counter() - minutes_from_s
        conn.execute("ANALYZE minute_counts")
        conn.execute("ANALYZE hour_counts")
    return time.perf_counter() - start


def time_minute_upserts(url: str, rows_per_statement: int, statements: int = 200, rounds: int = 3) -> dict[str, float]:
    """Microseconds per minute row of the sync's upsert, with the roll-up triggers and with them disabled.

    New minutes after the filled ones: ``statements`` upserts of ``rows_per_statement`` minutes (one
    appliance each, one transaction each, as the sync sends them); then the same minutes with other
    numbers (an update), then unchanged (a replay, which adds nothing to the roll-up). Median of
    ``rounds``, the two modes alternating, so a load swing on the machine hits both alike.
    """
    import psycopg

    from edge_inspect.plant.sync import _UPSERT_MINUTES

    samples: dict[str, list[float]] = {}
    with psycopg.connect(url) as conn:
        lines: dict[str, str] = dict(conn.execute("SELECT id, line FROM appliances").fetchall())
        ids = sorted(lines)
        base_s = int(time.time() // 60 * 60) + 86400  # past the filled minutes
        for _ in range(rounds):
            for mode in ("with trigger", "without trigger"):
                if mode == "without trigger":
                    conn.execute("ALTER TABLE minute_counts DISABLE TRIGGER USER")
                for step, good in (("insert", 10), ("update", 11), ("replay", 11)):
                    payloads = []
                    for n in range(statements):
                        first_s = base_s + (n // len(ids)) * rows_per_statement * 60
                        rows = [{"minute_start_s": first_s + m * 60, "good": good, "defect": 1, "failsafe": 0,
                                 "rejected": 1} for m in range(rows_per_statement)]  # fmt: skip
                        payloads.append({"appliance": ids[n % len(ids)], "line": lines[ids[n % len(ids)]],
                                         "rows": json.dumps(rows)})  # fmt: skip
                    t0 = time.perf_counter()
                    for payload in payloads:
                        conn.execute(_UPSERT_MINUTES, payload)
                        conn.commit()
                    per_row_us = (time.perf_counter() - t0) * 1e6 / (statements * rows_per_statement)
                    samples.setdefault(f"{step} {mode}", []).append(per_row_us)
                conn.execute("DELETE FROM minute_counts WHERE minute_start_s >= %s", (base_s,))
                conn.execute("ALTER TABLE minute_counts ENABLE TRIGGER USER")
                conn.commit()
        left = conn.execute(
            "SELECT COUNT(*) FROM hour_counts WHERE hour_start_s >= %s AND (good, defect, failsafe, rejected) <> "
            "(0, 0, 0, 0)",
            (base_s - 3600,),
        ).fetchone()
        assert left is not None and left[0] == 0, "the roll-up kept rows of removed minutes"
    return {name: statistics.median(values) for name, values in samples.items()}


def time_view(plant: dict[str, Any], repeats: int = 5) -> dict[str, float]:
    """Median ms of the plant view's queries and logged-in pages at the current table size."""
    from edge_inspect.config.plant import PlantConfig
    from edge_inspect.defect_log.store import Cursor
    from edge_inspect.plant.central import PlantDb, PlantFilter
    from edge_inspect.plant.connect import connect_db
    from edge_inspect.plant.objects import ObjectStore
    from edge_inspect.plant.users import PlantUserStore
    from edge_inspect.plant.web import create_plant_app

    config = PlantConfig(**plant)
    db = PlantDb(lambda: connect_db(config))
    now = time.time()
    _, deep = db.page(PlantFilter(), 60)
    for _ in range(200):  # walk 200 pages in to get a deep cursor
        _, deep = db.page(PlantFilter(), 60, before=deep)
    cases = {
        "grid page 1 (all lines)": lambda: db.page(PlantFilter(), 60),
        "grid page 201 (keyset)": lambda: db.page(PlantFilter(), 60, before=deep),
        "grid, one line, page 1": lambda: db.page(PlantFilter(lines=("line-03",)), 60),
        "grid, one model version, 7 days": lambda: db.page(PlantFilter(model_version="b-2", since_s=now - 7 * 86400),
                                                           60),
        "grid, defects of one line": lambda: db.page(PlantFilter(lines=("line-07",), verdicts=("defect",)), 60),
        "capped count (1,000)": lambda: db.count(PlantFilter()),
        "yield per line x shift, 24 h (roll-up)": lambda: db.yields(now - 86400, now, config.shift_start_times),
        "yield per line x shift, 24 h (minutes only)": lambda: db.minute_yields(now - 86400, now,
                                                                                config.shift_start_times),
        "yield, 24 h, shifts off the hour (roll-up)": lambda: db.yields(now - 86400, now, ["05:45", "13:45", "21:45"]),
        "yield per line x shift, 30 days (roll-up)": lambda: db.yields(now - 30 * 86400, now, config.shift_start_times),
        "yield per line x shift, 30 days (minutes only)": lambda: db.minute_yields(now - 30 * 86400, now,
                                                                                   config.shift_start_times),
        "appliances table": lambda: db.appliances(),
        "part detail": lambda: db.get(1000),
    }
    figures = {}
    for name, call in cases.items():
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t0) * 1000)
        figures[name] = statistics.median(samples)
    users = PlantUserStore(db)
    if users.get("bench") is None:
        users.add("bench", "bench-password-1", "viewer")
    app = create_plant_app(config, db, ObjectStore(config), secret_key="bench")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "bench", "password": "bench-password-1", "csrf_token": token})
    for name, path in (("page: overview (/)", "/"), ("page: grid (/review/)", "/review/"),
                       ("page: grid, one line", "/review/?line=line-05"), ("page: part detail", "/review/parts/1000"),
                       ("page: /api/status", "/api/status")):  # fmt: skip
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        figures[name] = statistics.median(samples)
    db.close()
    _ = Cursor
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="parts per second per appliance (each a row)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4, help="processes hosting the appliances")
    parser.add_argument("--image-fraction", type=float, default=0.01,
                        help="share of parts that are defects with images (4 objects each)")
    parser.add_argument("--view-parts", type=int, default=1_000_000,
                        help="parts in the table for the view timings (0: skip them)")
    parser.add_argument("--minute-days", type=int, default=30,
                        help="days of per-minute counts per appliance for the view timings")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from edge_inspect.config.plant import PlantConfig
    from edge_inspect.plant.migrate import upgrade
    from edge_inspect.plant.objects import ObjectStore

    cluster = Cluster()
    cluster.start()
    s3_port = free_port()
    # moto in its own process, so the S3 stand-in does not share the bench's interpreter
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", s3_port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    root = Path(tempfile.mkdtemp(prefix="ei-bench-plant-"))
    creds = root / "s3-credentials"
    creds.write_text("[default]\naws_access_key_id = bench\naws_secret_access_key = bench\n")
    plant = {"database_url": cluster.url(), "object_store_url": "s3://plant/bench",
             "object_store_endpoint_url": f"http://127.0.0.1:{s3_port}", "object_store_credentials_file": str(creds),
             "sync_interval_s": 1.0, "batch_parts": 500}  # fmt: skip
    try:
        upgrade(PlantConfig(**plant))
        ObjectStore(PlantConfig(**plant)).ensure_bucket()
        ids = [f"box-{n:03d}" for n in range(args.appliances)]
        results: Any = multiprocessing.get_context("spawn").Queue()
        procs = [
            multiprocessing.get_context("spawn").Process(
                target=worker, args=(ids[w :: args.workers], plant, str(root), args.rate, args.seconds,
                                     args.image_fraction, results),
            )
            for w in range(args.workers)
        ]
        import psycopg

        load_before = os.getloadavg()
        for proc in procs:
            proc.start()
        load_during = [0.0, 0.0, 0.0]
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            while any(p.is_alive() for p in procs):
                time.sleep(2.0)
                load_during = max(load_during, list(os.getloadavg()))
            reports = [results.get(timeout=60) for _ in procs]
            for proc in procs:
                proc.join()
            total = int(conn.execute("SELECT COUNT(*) FROM parts").fetchone()[0])  # type: ignore[index]
            images = int(conn.execute("SELECT COALESCE(SUM(image_count), 0) FROM parts").fetchone()[0])  # type: ignore[index]
            # steady state: from 10 s after the first capture to the last capture
            first, last = conn.execute("SELECT MIN(captured_at_s), MAX(captured_at_s) FROM parts").fetchone()  # type: ignore[misc]
            start, end = first + 10.0, last
            lags = sorted(r[0] for r in conn.execute(
                "SELECT synced_at_s - captured_at_s FROM parts WHERE captured_at_s BETWEEN %s AND %s",
                (start, end - 2.0)).fetchall())  # fmt: skip
            committed = conn.execute("SELECT COUNT(*) FROM parts WHERE synced_at_s BETWEEN %s AND %s",
                                     (start, end)).fetchone()[0]  # type: ignore[index]  # fmt: skip
            captured = conn.execute("SELECT COUNT(*) FROM parts WHERE captured_at_s BETWEEN %s AND %s",
                                    (start, end)).fetchone()[0]  # type: ignore[index]  # fmt: skip
        written = sum(r["written"] for r in reports)
        sustained = committed / (end - start) if end > start else 0.0
        offered = captured / (end - start) if end > start else 0.0
        figures: dict[str, Any] = {
            "appliances": args.appliances, "rate_per_appliance": args.rate, "seconds": args.seconds,
            "offered_rows_per_s": offered, "sustained_rows_per_s": sustained, "drain_s": time.time() - last,
            "rows_written": written, "rows_in_postgres": total, "images": images,
            "lost_or_duplicated": written - total, "sync_failures": sum(r["failures"] for r in reports),
            "writer_behind_max_s": max(r["writer_behind_s"] for r in reports),
            "lag_p50_s": lags[len(lags) // 2] if lags else None,
            "lag_p99_s": lags[int(len(lags) * 0.99)] if lags else None,
            "loadavg_before": load_before, "loadavg_during": load_during,
        }  # fmt: skip
        print(json.dumps(figures, indent=2), flush=True)
        if args.view_parts > 0:  # 0: the sync figures only
            filled: dict[str, float] = {}
            figures["fill_s"] = fill_parts(cluster.url(), args.view_parts, args.minute_days, filled)
            figures.update(filled)
            figures["view_parts"] = args.view_parts
            figures["loadavg_before_view"] = os.getloadavg()
            figures["view_ms"] = time_view(plant)
            print(json.dumps({k: figures[k] for k in ("fill_s", "minute_rows", "minute_fill_s")}, indent=2))
            print(json.dumps(figures["view_ms"], indent=2))
            figures["minute_upsert_us_per_row"] = {
                f"{n} row(s) a statement": time_minute_upserts(cluster.url(), n) for n in (1, 60)
            }
            figures["loadavg_after_view"] = os.getloadavg()
            print(json.dumps(figures["minute_upsert_us_per_row"], indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        moto.terminate()
        moto.wait(30)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
