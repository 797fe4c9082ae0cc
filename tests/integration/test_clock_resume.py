"""A restarted service's clock never goes back before its last stored cycle (a simulated
clock runs ahead of the wall clock; restarted at now it stored cycles out of time order)."""

from __future__ import annotations

from datetime import timedelta

from tests.service_kit import T0, make_runtime
from vpp.commands.run import resume_after_stored


def test_the_clock_resumes_after_the_last_stored_cycle(db_url):
    ahead = T0 + timedelta(days=2)  # where a --speed 60 run had got to
    rt = make_runtime(db_url, at=ahead)
    rt.run_cycle()
    step = timedelta(minutes=rt.site.dispatch.step_minutes)
    # Restarted "now" (T0, before the stored cycle): resume at the interval after it.
    assert resume_after_stored(rt.engine, T0, rt.site) == ahead + step
    # Restarted later than the stored cycle: now it is.
    later = ahead + timedelta(hours=3)
    assert resume_after_stored(rt.engine, later, rt.site) == later
    rt.engine.dispose()


def test_a_new_database_starts_now(tmp_path):
    from tests.service_kit import small_site
    from vpp.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    assert resume_after_stored(engine, T0, small_site()) == T0
