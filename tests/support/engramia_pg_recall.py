#!/usr/bin/env python3
"""Recall from Engramia's PostgreSQL tables with the installed Engramia.

Two Engramia versions read engram's PostgreSQL output in the tests:

* 0.7.0.dev0 (.cache/venv-engramia07; schema at revision 016 and later, keyed by
  (tenant_id, project_id, key)): Engramia itself does everything. The database is
  first copied (CREATE DATABASE ... TEMPLATE), because Memory() writes
  metadata/embedding_config and recall() records ROI and reuse in the store; the
  database under test must stay exactly as engram wrote it. Then
  Memory(OpenAIEmbeddings, PostgresStorage(copy)) with set_scope(...):
  recall(question, readonly=True), find_by_skills([skill]),
  storage.count_patterns(), and storage.search_similar + load + Pattern
  validation for the "invalid"/"missing" lists.

* 0.6.6 (.cache/venv; schema at revision 015, keyed by `key` alone):
  PostgresStorage.search_similar binds the query vector as ``:vec::vector``,
  which SQLAlchemy's text() does not recognise as a bind parameter (the ``::``
  right after it), so the SQL reaching PostgreSQL still contains ":vec" and
  fails; Engramia's GitHub main writes ``CAST(:vec AS vector)``. This path runs
  that fixed query, otherwise identical to 0.6.6's search_similar (+ load +
  Pattern validation as in engramia/reuse/matcher.py). Its load/save work, so
  find_by_skills is Engramia's own SkillRegistry over its PostgresStorage.

The question is embedded with Engramia's own OpenAIEmbeddings (OPENAI_API_KEY,
OPENAI_BASE_URL and optional ENGRAMIA_EMBEDDING_MODEL from the environment).

Usage:
    python tests/support/engramia_pg_recall.py --url postgres://... [--tenant T] [--project P]
        [--question Q] [--limit N] [--skill S ...] [--every]

Output (one JSON object on stdout):
    {"engramia": "0.7.0.dev0",
     "matches": [{"key", "task", "similarity"}, ...],  # --question: valid patterns, best first
     "invalid": ["<key>", ...],    # found by the search, failed Pattern validation
     "missing": ["<key>", ...],    # found by the search, no memory_data row in scope
     "skills": {"<skill>": ["<pattern key>", ...]},   # find_by_skills([skill])
     "keys": ["<key>", ...],       # every pattern key in scope (list_keys / SELECT)
     "unrecalled": ["<key>", ...], # --every: keys not in the top 10 when recalling their own task
     "pattern_count": n,           # patterns in scope (count_patterns)
     "embedding_count": n,         # memory_embeddings rows LIKE 'patterns%' in scope
     "used_keyword_fallback": false}
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import logging
import os
import sys
import uuid

from _engram_support import HelperError, run, sqlalchemy_url

PATTERNS_PREFIX = "patterns"  # engramia._util.PATTERNS_PREFIX
FALLBACK_MARKER = "falling back to keyword search"


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def _embedding_count(conn, text, scope: dict) -> int:
    return int(
        conn.execute(
            text(
                "SELECT COUNT(*) FROM memory_embeddings WHERE key LIKE :prefix ESCAPE '\\' "
                "AND tenant_id = :tid AND project_id = :pid"
            ),
            {"prefix": f"{_escape_like(PATTERNS_PREFIX)}%", **scope},
        ).scalar_one()
    )


def _copy_database(sa_url: str):
    """CREATE DATABASE <db>_rb_<random> TEMPLATE <db>; returns (copy URL, drop function)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(sa_url)
    copy = f"{url.database}_rb_{uuid.uuid4().hex[:8]}"[:63]
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{url.database}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=copy).render_as_string(hide_password=False), drop


def read_07(args, sa_url: str, embeddings) -> dict:
    """Engramia 0.7: everything through Memory and its PostgresStorage, on a copy."""
    from engramia import Memory
    from engramia._context import set_scope
    from engramia.providers.postgres import PostgresStorage
    from engramia.types import Pattern, Scope
    from pydantic import ValidationError
    from sqlalchemy import text

    copy_url, drop = _copy_database(sa_url)
    try:
        storage = PostgresStorage(database_url=copy_url)
        try:
            m = Memory(embeddings=embeddings, storage=storage)
            set_scope(Scope(tenant_id=args.tenant, project_id=args.project))
            out: dict = {"matches": [], "invalid": [], "missing": [], "unrecalled": []}
            if args.question:
                matches = m.recall(task=args.question, limit=args.limit, readonly=True)
                out["matches"] = [
                    {"key": x.pattern_key, "task": x.pattern.task, "similarity": float(x.similarity)} for x in matches
                ]
                query = embeddings.embed(args.question)
                for key, _ in storage.search_similar(query, limit=args.limit, prefix=PATTERNS_PREFIX):
                    data = storage.load(key)
                    if data is None:
                        out["missing"].append(key)
                        continue
                    try:
                        Pattern.model_validate(data)
                    except (ValidationError, ValueError, KeyError):
                        out["invalid"].append(key)
            out["skills"] = {s: [x.pattern_key for x in m.find_by_skills([s])] for s in args.skill}
            out["keys"] = sorted(storage.list_keys(prefix=PATTERNS_PREFIX))
            if args.every:
                for key in out["keys"]:
                    task = Pattern.model_validate(storage.load(key)).task
                    got = m.recall(task=task, limit=10, deduplicate=False, readonly=True)
                    if key not in [x.pattern_key for x in got]:
                        out["unrecalled"].append(key)
            out["pattern_count"] = storage.count_patterns()
            with storage._engine.connect() as conn:
                out["embedding_count"] = _embedding_count(conn, text, {"tid": args.tenant, "pid": args.project})
            return out
        finally:
            storage._engine.dispose()
    finally:
        drop()


def read_06(args, sa_url: str, embeddings) -> dict:
    """Engramia 0.6.6: its search with the bind fixed; load, validation and skills its own."""
    from engramia._context import set_scope
    from engramia.core.skill_registry import SkillRegistry
    from engramia.providers.postgres import PostgresStorage, _vec_to_pg
    from engramia.types import Pattern, Scope
    from pydantic import ValidationError
    from sqlalchemy import create_engine, text

    scope = {"tid": args.tenant, "pid": args.project}
    prefix = f"{_escape_like(PATTERNS_PREFIX)}%"
    engine = create_engine(sa_url)

    def search(conn, question: str, limit: int) -> list:
        vec = embeddings.embed(question)
        return conn.execute(
            text(
                """
                SELECT key, 1 - (embedding <=> CAST(:vec AS vector)) AS similarity
                FROM memory_embeddings
                WHERE key LIKE :prefix ESCAPE '\\'
                  AND tenant_id = :tid
                  AND project_id = :pid
                ORDER BY embedding <=> CAST(:vec AS vector)
                LIMIT :limit
                """
            ),
            {"vec": _vec_to_pg(vec), "prefix": prefix, "limit": limit, **scope},
        ).fetchall()

    def load(conn, key: str):
        return conn.execute(
            text("SELECT data FROM memory_data WHERE key = :key AND tenant_id = :tid AND project_id = :pid"),
            {"key": key, **scope},
        ).scalar_one_or_none()

    out: dict = {"matches": [], "invalid": [], "missing": [], "unrecalled": []}
    try:
        with engine.connect() as conn:
            if args.question:
                for key, similarity in search(conn, args.question, args.limit):
                    data = load(conn, key)
                    if data is None:
                        out["missing"].append(key)
                        continue
                    try:
                        pattern = Pattern.model_validate(data)
                    except (ValidationError, ValueError, KeyError):
                        out["invalid"].append(key)
                        continue
                    out["matches"].append({"key": key, "task": pattern.task, "similarity": float(similarity)})
            out["keys"] = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT key FROM memory_data WHERE key LIKE :prefix ESCAPE '\\' "
                        "AND tenant_id = :tid AND project_id = :pid ORDER BY key"
                    ),
                    {"prefix": prefix, **scope},
                )
            ]
            if args.every:
                for key in out["keys"]:
                    task = Pattern.model_validate(load(conn, key)).task
                    if key not in [k for k, _ in search(conn, task, 10)]:
                        out["unrecalled"].append(key)
            out["pattern_count"] = len(out["keys"])
            out["embedding_count"] = _embedding_count(conn, text, scope)
    finally:
        engine.dispose()
    storage = PostgresStorage(database_url=sa_url)
    set_scope(Scope(tenant_id=args.tenant, project_id=args.project))
    out["skills"] = {s: SkillRegistry(storage).find_by_skills([s]) for s in args.skill}
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="postgres://user@host:port/db")
    ap.add_argument("--tenant", default="default")
    ap.add_argument("--project", default="default")
    ap.add_argument("--question")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--skill", action="append", default=[], help="also list find_by_skills([SKILL]) (repeatable)")
    ap.add_argument("--every", action="store_true", help="recall every pattern of the scope by its own task")
    args = ap.parse_args()

    sa_url = sqlalchemy_url(args.url)
    if not os.environ.get("OPENAI_API_KEY"):
        raise HelperError(
            "OPENAI_API_KEY is not set: Engramia's OpenAIEmbeddings needs it "
            "(with OPENAI_BASE_URL pointing at the stand-in server in tests)"
        )
    collector = _Collector()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("engramia").addHandler(collector)

    from engramia.providers.openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model=os.environ.get("ENGRAMIA_EMBEDDING_MODEL", "text-embedding-3-small"))
    version = md.version("engramia")
    out = (read_06 if version.startswith("0.6.") else read_07)(args, sa_url, embeddings)
    out["engramia"] = version
    out["used_keyword_fallback"] = any(FALLBACK_MARKER in msg for msg in collector.messages)
    return out


if __name__ == "__main__":
    run(main)
