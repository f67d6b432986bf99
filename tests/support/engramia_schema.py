#!/usr/bin/env python3
"""Create (or upgrade) Engramia's own PostgreSQL schema in a database, the way Engramia does.

Runs the alembic migrations shipped inside the installed engramia wheel
(engramia/db/migrations; head 015 in 0.6.6, 032 in the vendored 0.7.0.dev0) up
to --revision (default head), i.e. `alembic upgrade REVISION`: on an empty
database it creates the schema, on one at an earlier revision it continues from
there (Engramia's deployment step, `alembic upgrade head`). The wheel ships no
alembic.ini, so the Config is built in code with script_location pointing at
the package's migrations; the migrations' env.py reads the database URL from
ENGRAMIA_DATABASE_URL (and skips logging setup when there is no ini file).

Usage:
    python tests/support/engramia_schema.py --url postgres://postgres@127.0.0.1:PORT/DB [--revision REV]

Output (one JSON object on stdout):
    {"before": null | "<revision found>", "head": "015", "tables": ["alembic_version", "audit_log", ...]}
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _engram_support import HelperError, run, sqlalchemy_url


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="postgres://user@host:port/db")
    ap.add_argument("--revision", default="head", help="alembic revision to upgrade to (default head)")
    args = ap.parse_args()

    sa_url = sqlalchemy_url(args.url)

    import engramia.db.migrations as migrations_pkg
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    migrations_dir = Path(migrations_pkg.__file__).resolve().parent
    if not (migrations_dir / "env.py").is_file():
        raise HelperError(f"engramia wheel has no alembic env.py under {migrations_dir}")

    # env.py takes the URL from here. Alembic's own messages go to stderr so that
    # stdout carries only the JSON result.
    os.environ["ENGRAMIA_DATABASE_URL"] = sa_url
    cfg = Config(stdout=sys.stderr)
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", sa_url.replace("%", "%%"))
    engine = create_engine(sa_url)
    try:
        with engine.connect() as conn:
            before = None
            if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is not None:
                before = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    finally:
        engine.dispose()
    command.upgrade(cfg, args.revision)

    engine = create_engine(sa_url)
    try:
        with engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            tables = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                        "ORDER BY table_name"
                    )
                )
            ]
    finally:
        engine.dispose()
    return {"before": before, "head": head, "tables": tables}


if __name__ == "__main__":
    run(main)
