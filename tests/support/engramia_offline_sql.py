#!/usr/bin/env python3
"""Print Engramia's schema at an alembic revision as SQL, from Engramia's own migrations.

This is alembic's offline mode, `alembic upgrade REVISION --sql`, run on the migrations
inside the installed engramia wheel (engramia/db/migrations; the wheel ships no alembic.ini,
so the Config is built here with script_location pointing at them, as
tests/support/engramia_schema.py does for the online upgrade). Engramia's env.py reads the
URL from ENGRAMIA_DATABASE_URL; offline mode only needs its dialect, so no server is involved.

The output is what engram ships as migrations/engramia_<REVISION>_*.sql: a header saying
where it came from, then alembic's SQL unchanged (it creates the vector extension, every
table, and the alembic_version row, inside BEGIN ... COMMIT). Regenerate with the command in
the header; a test compares the shipped files with this script's output.

Usage:
    python tests/support/engramia_offline_sql.py REVISION
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import io
import json
import os
import sys
from pathlib import Path

# Where each Engramia version engram ships a schema of comes from.
ORIGINS = {
    "0.6.6": (
        "PyPI engramia==0.6.6 (engramia-0.6.6-py3-none-any.whl, "
        "sha256 25354f5e9df68b95aa7523802b8bc49191ada701e54b584c3d4acfadd99b9b31)",
        ".cache/venv/bin/python",
    ),
    "0.7.0.dev0": (
        "Engramia GitHub main at commit 9ea12fb (tests/support/wheels/engramia-0.7.0.dev0-py3-none-any.whl, "
        "sha256 c7b9685b574901635c802d8d8a5a531c9a0704cc84eaf3e40462df6f23303cf6)",
        ".cache/venv-engramia07/bin/python",
    ),
}


def wheel_sha256() -> str | None:
    """The sha256 pip recorded for a wheel installed from a file (direct_url.json)."""
    text = md.distribution("engramia").read_text("direct_url.json")
    if not text:
        return None
    return json.loads(text).get("archive_info", {}).get("hashes", {}).get("sha256")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} REVISION")
    revision = sys.argv[1]

    import engramia.db.migrations as migrations_pkg
    from alembic import command
    from alembic.config import Config

    version = md.version("engramia")
    if version not in ORIGINS:
        sys.exit(f"engramia {version} is not one engram ships a schema of ({', '.join(ORIGINS)})")
    origin, python = ORIGINS[version]
    sha = wheel_sha256()
    if sha is not None and sha not in origin:
        sys.exit(f"the installed engramia {version} wheel has sha256 {sha}, not the one in {origin}")

    os.environ["ENGRAMIA_DATABASE_URL"] = "postgresql+psycopg2://"
    cfg = Config(stdout=sys.stderr)
    cfg.set_main_option("script_location", str(Path(migrations_pkg.__file__).resolve().parent))
    sql = io.StringIO()
    with contextlib.redirect_stdout(sql):
        command.upgrade(cfg, revision, sql=True)
    body = sql.getvalue()
    if f"SET version_num='{revision}'" not in body:
        sys.exit(f"alembic's SQL does not end at revision {revision}")

    out = sys.stdout
    out.write(f"-- Engramia's PostgreSQL schema at alembic revision {revision} (Engramia {version}).\n")
    out.write("-- Generated, not written by hand: alembic's offline mode (`alembic upgrade REVISION --sql`)\n")
    out.write("-- over the migrations inside the Engramia wheel, output unchanged below this header.\n")
    out.write(f"-- Source: {origin}; alembic {md.version('alembic')}, SQLAlchemy {md.version('sqlalchemy')}.\n")
    out.write(f"-- Command: {python} tests/support/engramia_offline_sql.py {revision}\n")
    out.write("-- Engramia is licensed BUSL-1.1 by its authors; this is the output of its migrations.\n")
    out.write("--\n")
    out.write("-- engram runs this file as one script on a database without Engramia's tables (the first\n")
    out.write("-- write of a run, never a dry run); its BEGIN ... COMMIT makes it all or nothing. It\n")
    out.write("-- includes CREATE EXTENSION vector and the alembic_version row, so Engramia's own\n")
    out.write("-- `alembic upgrade head` continues from this revision.\n\n")
    out.write(body)


if __name__ == "__main__":
    main()
