"""Engines and migrations: ``make_engine(url)`` and ``migrate(engine)`` (alembic upgrade head).

Migrations live in the package (``vpp/store/migrations``) and run on every start, so a fresh
machine needs no manual step.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(RuntimeError):
    """The database cannot be reached or migrated; the message says which URL and why."""


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for ``url``. SQLite: the file's folder is created, WAL journal, foreign keys
    on. PostgreSQL: ``schema`` (when given) becomes the search path of every connection."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kw: dict = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if not path or path == ":memory:":
            kw["poolclass"] = StaticPool
        engine = create_engine(url, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    opts = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args=opts)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Alembic's ``context`` and ``op`` are module globals: one migration at a time per process.
_MIGRATING = threading.Lock()
# Key of the PostgreSQL advisory lock that serialises migrations across services.
_MIGRATE_LOCK_KEY = 0x7670_6D69  # "vpmi"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (``alembic upgrade head``). Two services
    starting together on one database migrate one after the other, the second finding the
    schema current: a PostgreSQL advisory lock (to the transaction's end), SQLite's write
    lock taken first (``BEGIN IMMEDIATE``)."""
    cfg = alembic_config()
    try:
        with _MIGRATING, engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK_KEY})
            elif conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except Exception as exc:
        raise DatabaseError(
            f"cannot migrate the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def ping(engine: Engine) -> str | None:
    """None when the database answers, else the reason it does not."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
