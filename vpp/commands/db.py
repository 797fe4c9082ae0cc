"""``vpp db``: migrate the database and manage API keys."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "db",
        help="database: migrate, create and list API keys",
        description="Acts on VPP_DATABASE_URL (default sqlite:///var/vpp.sqlite3).",
    )
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    m = dsub.add_parser("migrate", help="bring the schema to the newest revision")
    m.set_defaults(func=_migrate)
    k = dsub.add_parser(
        "create-key", help="create an API key and print it once (only its hash is stored)"
    )
    k.add_argument("--name", required=True, help="who uses the key, e.g. state-grid-dispatch")
    k.add_argument("--role", required=True, choices=["viewer", "operator", "utility", "admin"])
    k.set_defaults(func=_create_key)
    ls = dsub.add_parser("list-keys", help="list key names and roles (never the secrets)")
    ls.set_defaults(func=_list_keys)
    rv = dsub.add_parser("revoke-key", help="revoke a key by name")
    rv.add_argument("--name", required=True)
    rv.set_defaults(func=_revoke)


def _engine():
    import logging

    from pydantic import ValidationError

    from vpp.errors import UserError
    from vpp.runtime.settings import Settings
    from vpp.store.db import DatabaseError, make_engine, migrate

    try:
        settings = Settings()
    except ValidationError as exc:
        raise UserError(f"invalid settings: {exc.errors()[0]['msg']}") from None
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    except DatabaseError as exc:
        raise UserError(str(exc)) from None
    return engine


def _migrate(args: argparse.Namespace) -> int:
    engine = _engine()
    print(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")
    return 0


def _create_key(args: argparse.Namespace) -> int:
    from api.auth import create_key
    from vpp.errors import UserError

    try:
        key = create_key(_engine(), args.name, args.role)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # The key alone on stdout, so that ``KEY=$(vpp db create-key ...)`` captures it; the note
    # for the human on stderr.
    print(key, flush=True)
    print(f"(API key {args.name!r}, role {args.role}; it is shown only this once)", file=sys.stderr)
    return 0


def _list_keys(args: argparse.Namespace) -> int:
    from vpp.store import repo

    with _engine().connect() as conn:
        for r in repo.list_keys(conn):
            state = "revoked" if r["revoked"] else "active"
            print(f"{r['name']:<30} {r['role']:<9} {state:<8} {r['created_at']:%Y-%m-%d %H:%M}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from vpp.errors import UserError
    from vpp.store import repo

    with _engine().begin() as conn:
        if not repo.revoke_key(conn, args.name):
            raise UserError(f"no API key named {args.name!r}; see 'vpp db list-keys'")
    print(f"revoked {args.name}")
    return 0
