"""The posted-series table on SQLite and PostgreSQL: migration 0006 on a database at 0005
keeps what was stored and matches the tables module; rows round-trip in posting order with
their times in UTC, zone-aware; a window reads the rows of the series posted last."""

from __future__ import annotations

from datetime import UTC, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from tests.service_kit import T0
from vpp.park.price_series import Row
from vpp.store import series as store
from vpp.store import tables as t
from vpp.store.db import alembic_config, make_engine, migrate


def _to(engine, revision: str, down: bool = False) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0006_on_a_0005_database_keeps_what_was_stored(db_url):
    engine = make_engine(db_url)
    _to(engine, "0005")
    assert "market_series" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(insert(t.dr_events).values(event_id="E1", status="announced", body={}))
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(select(t.dr_events.c.event_id)).scalars().all() == ["E1"]
        assert conn.execute(select(t.market_series)).all() == []
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert [d for d in diff if "market_series" in repr(d)] == []
    _to(engine, "0005", down=True)
    assert "market_series" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(select(t.dr_events.c.event_id)).scalars().all() == ["E1"]
    engine.dispose()


def test_rows_round_trip_and_the_last_posted_series_is_read(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    q = timedelta(minutes=15)
    issued = T0 - timedelta(hours=10)
    first = [Row(f"points[{k}]", T0 + k * q, 0.5 + k, issued, 0.3) for k in range(3)]
    again = [Row("points[0]", T0 + q, 9.0)]  # a cleared price for the second interval
    other = [Row("points[0]", T0, 4.0)]  # another series, posted before
    with engine.begin() as conn:
        store.save_points(conn, "price", "old", "energy", 15, other, "market")
        store.save_points(conn, "price", "gd", "energy", 15, first, "market")
        store.save_points(conn, "price", "gd", "energy", 15, again, "market")
        assert store.save_points(conn, "ef", "x", "average", 60, [], "market") == 0
    with engine.connect() as conn:
        rows = store.points_between(conn, "price", T0, T0 + 4 * q)
        s = store.series_between(conn, "price", T0, T0 + 4 * q)
        assert store.series_between(conn, "ef", T0, T0 + 4 * q) is None
    assert [r["name"] for r in rows] == ["old", "gd", "gd", "gd", "gd"]
    assert rows[1]["interval_start"] == T0.astimezone(UTC)
    assert rows[1]["issued_at"] == issued and rows[1]["issued_at"].tzinfo is not None
    assert s.name == "gd" and s.value == (0.5, 1.5, 2.5, 9.0)  # the old series left out
    assert s.issued == (issued, issued, issued, None)
    assert s.export_value == (0.3, 0.3, 0.3, None)
    engine.dispose()
