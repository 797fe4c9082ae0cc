"""Storage: SQLAlchemy 2 tables, Alembic migrations, the repository functions and the metered
periods read back for accounting (``metered``).

SQLite by default, PostgreSQL when ``VPP_DATABASE_URL`` says so. Everything a cycle stores is
written in one transaction, so a process killed mid-cycle leaves nothing half-written. Imports
``vpp.park``, ``controllers`` and ``vpp.accounting``; never ``runtime`` or above.
"""
