"""Sanity check of .cache/venv-engramia07 (run by scripts/setup-python engramia07).

The tests need Engramia 0.7.0.dev0 from the vendored wheel, with its alembic migrations up to
head 032 and its PostgreSQL storage (whose vector search 0.6.6 gets wrong).
"""

import importlib.metadata as md
from pathlib import Path

import alembic  # noqa: F401
import httpx  # noqa: F401
import psycopg2  # noqa: F401
import engramia.db.migrations as migrations
from engramia.providers.postgres import PostgresStorage  # noqa: F401

assert md.version("engramia") == "0.7.0.dev0", md.version("engramia")
versions = Path(migrations.__file__).parent / "versions"
assert (versions / "032_admin_auth.py").is_file(), f"no migration 032 in {versions}"
assert not list(versions.glob("033_*.py")), f"a migration after 032 in {versions}: not the vendored wheel"
