"""Real stores for the plant tests: a throwaway PostgreSQL cluster and a moto S3 server on loopback.

The cluster is Debian's PostgreSQL (``initdb``/``pg_ctl`` from /usr/lib/postgresql/*/bin) on a free
port, one per test session; each test gets its own database. As root (CI), the server runs as the
``postgres`` system user, which PostgreSQL insists on. Import the fixtures into a test module.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_inspect.config.plant import PlantConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (generous timeouts: the machine is shared)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


class PgCluster:
    """A PostgreSQL server in a temporary folder, started and stopped by ``pg_ctl``."""

    def __init__(self, bin_dir: Path, base: Path, as_user: str | None) -> None:
        self.bin_dir, self.base, self.as_user = bin_dir, base, as_user
        self.data = base / "data"
        self.port = free_port()

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"),
                  "-w", "-t", "120", "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop",
                  check=False)  # fmt: skip

    def is_running(self) -> bool:
        return self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does)")
    as_user = None
    base = Path(tempfile.mkdtemp(prefix="ei-pg-"))  # under /tmp: the postgres user can reach it
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no postgres system user to run the server as")
        os.chown(base, entry.pw_uid, entry.pw_gid)
        as_user = "postgres"
    cluster = PgCluster(bin_dir, base, as_user)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


class S3Server:
    """moto's S3 API server on a loopback port; ``stop``/``start`` make an outage (state survives)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plant_config(pg_cluster: PgCluster, s3_server: S3Server, tmp_path: Path) -> PlantConfig:
    """A [plant] config over a fresh database (migrated) and a fresh bucket, with keys in a file."""
    from edge_inspect.plant.migrate import upgrade
    from edge_inspect.plant.objects import ObjectStore

    if not pg_cluster.is_running():  # a test that stopped it failed before restarting it
        pg_cluster.start()
    if s3_server._server is None:
        s3_server.start()
    credentials = tmp_path / "s3-credentials"
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    config = PlantConfig(
        enabled=False,
        appliance_id="box-1",
        line="line-1",
        database_url=pg_cluster.url(pg_cluster.create_database()),
        object_store_url=f"s3://b-{uuid.uuid4().hex[:10]}/plant",
        object_store_endpoint_url=s3_server.endpoint,
        object_store_credentials_file=credentials,
        sync_interval_s=0.05,
        retry_max_delay_s=0.5,
        model_poll_interval_s=0.2,
        staging_dir=tmp_path / "staging",
    )
    upgrade(config)
    ObjectStore(config).ensure_bucket()
    return config


def appliance(config: PlantConfig, appliance_id: str, line: str, **changes: Any) -> PlantConfig:
    return config.model_copy(update={"appliance_id": appliance_id, "line": line, **changes})


def pg_rows(config: PlantConfig, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    assert config.database_url is not None
    with psycopg.connect(config.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def bucket_keys(config: PlantConfig, under: str = "") -> list[str]:
    from edge_inspect.plant.objects import ObjectStore

    store = ObjectStore(config)
    keys: list[str] = []
    paginator = store.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=store.bucket, Prefix=f"{store.prefix}/{under}"):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


@contextlib.contextmanager
def pg_down(cluster: PgCluster) -> Iterator[None]:
    cluster.stop("fast")
    try:
        yield
    finally:
        cluster.start()


class NoSource:
    """A bus subscription that never has anything (the writer is fed by ``write_batch``)."""

    def get(self, timeout_s: float | None = None) -> None:
        return None


def fill_appliance(config: PlantConfig, data_dir: Path, model_version: str, now_s: float) -> None:
    """Log 6 defects and 2 sampled goods on one box, count 40 parts per minute, and sync it all."""
    from test_defect_log_helpers import log_config, make_result

    from edge_inspect.defect_log import DefectLogWriter
    from edge_inspect.events import Verdict
    from edge_inspect.plant.sync import PlantSync

    writer = DefectLogWriter(log_config(data_dir, sample_good_fraction=1.0), NoSource())
    writer.open()
    results = [
        make_result(i, Verdict.GOOD if i >= 6 else Verdict.DEFECT, run_id=config.line, wall_s=now_s - 600 + i,
                    model_version=model_version)
        for i in range(8)
    ]  # fmt: skip
    writer.write_batch(results)
    writer.close()
    sync = PlantSync(config, data_dir)
    for i in range(40):
        sync.count(make_result(100 + i, Verdict.DEFECT if i % 4 == 0 else Verdict.GOOD, wall_s=now_s - 300 + i))
    assert sync.sync_once()
    sync.close()
