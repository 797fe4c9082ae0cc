"""Telemetry ingest: one day of 500 assets at 1-minute resolution (720,000 readings) into
SQLite and PostgreSQL through the repository's batch insert. The goal: under a minute each.

Usage: python bench/ingest.py [--assets 500] [--minutes 1440] [--batch 50000]
       [--sqlite-only] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text

from vpp.store import repo, tables
from vpp.store.db import make_engine, migrate

GOAL_S = 60.0


def readings(assets: int, minutes: int, start: datetime):
    for m in range(minutes):
        ts = start + timedelta(minutes=m)
        for a in range(assets):
            yield {
                "asset": f"asset-{a:04d}",
                "ts": ts,
                "p_kw": float((a * 7 + m) % 500) - 100.0,
                "e_kwh": None if a % 5 else 500.0 + m % 100,
                "source": "bench",
            }


def run(engine, assets: int, minutes: int, batch: int) -> tuple[float, int]:
    migrate(engine)
    start = datetime(2026, 7, 15, tzinfo=UTC)
    t0 = time.perf_counter()
    buf: list[dict] = []
    for r in readings(assets, minutes, start):
        buf.append(r)
        if len(buf) >= batch:
            with engine.begin() as conn:
                repo.ingest_telemetry(conn, buf)
            buf = []
    if buf:
        with engine.begin() as conn:
            repo.ingest_telemetry(conn, buf)
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(tables.telemetry)).scalar()
    return elapsed, n


def report(name: str, elapsed: float, n: int) -> bool:
    ok = elapsed <= GOAL_S
    print(
        f"{name:<11} {n:>9,} readings in {elapsed:6.1f} s = {n / elapsed:>9,.0f} readings/s "
        f"({'within' if ok else 'OVER'} the {GOAL_S:.0f} s goal)"
    )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=1440)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--sqlite-only", action="store_true")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    total = args.assets * args.minutes
    print(
        f"ingest {args.assets} assets x {args.minutes} min = {total:,} readings, "
        f"batches of {args.batch:,}"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        ok &= report("sqlite", *run(engine, args.assets, args.minutes, args.batch))
        engine.dispose()
    if not args.sqlite_only:
        schema = f"vpp_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.pg_url else "?"
        engine = make_engine(f"{args.pg_url}{sep}options=-csearch_path%3D{schema}")
        try:
            ok &= report("postgresql", *run(engine, args.assets, args.minutes, args.batch))
        finally:
            engine.dispose()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
