"""Schema migrations of the plant database, by Alembic (the scripts ship in ``migrations/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.plant import PlantConfig
from .connect import PlantError, connect_db

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0002"
# The schemas this code's appliances and commands write into unchanged: 0002 only adds the hourly
# roll-up, which the database keeps itself. The plant view needs HEAD (``plant serve`` migrates first).
WRITABLE_REVISIONS = ("0001", "0002")


def upgrade(config: PlantConfig, revision: str = "head") -> None:
    """Bring the plant database to ``revision`` (idempotent: an up-to-date database is left alone)."""
    import psycopg
    import sqlalchemy
    from alembic import command
    from alembic.config import Config

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: connect_db(config), poolclass=sqlalchemy.pool.NullPool
    )
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            alembic_config.attributes["connection"] = connection
            command.upgrade(alembic_config, revision)
    except (sqlalchemy.exc.SQLAlchemyError, psycopg.Error) as error:
        raise PlantError(f"migrating the plant database failed: {str(error).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()


def current_revision(conn: Any) -> str | None:
    """The database's schema revision (None before the first migration)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute("SELECT version_num FROM alembic_version")
        found = cur.fetchone()
    return None if found is None else str(found[0])


def require_schema(conn: Any) -> None:
    """Refuse a database the migrations have not set up, or one newer than this code (a box never migrates)."""
    revision = current_revision(conn)
    conn.rollback()
    if revision is None:
        raise PlantError("the plant database has no plant schema yet: run edge-inspect plant migrate")
    if revision not in WRITABLE_REVISIONS:
        raise PlantError(
            f"the plant database is at schema {revision}, which this edge-inspect does not know (it writes into "
            f"{', '.join(WRITABLE_REVISIONS)}): update edge-inspect here"
        )
