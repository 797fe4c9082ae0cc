"""Storage: SQLAlchemy 2 tables, Alembic migrations and the repository functions.

SQLite by default, PostgreSQL when ``VPP_DATABASE_URL`` says so. Everything a cycle stores is
written in one transaction, so a process killed mid-cycle leaves nothing half-written.
"""
