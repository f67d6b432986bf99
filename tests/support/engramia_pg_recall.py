#!/usr/bin/env python3
"""Recall from Engramia's PostgreSQL tables the way Engramia's (fixed) search does.

Engramia 0.6.6's PostgresStorage.search_similar binds the query vector as
``:vec::vector``, which SQLAlchemy's text() does not recognise as a bind
parameter (the ``::`` right after it), so the SQL reaching PostgreSQL still
contains ":vec" and fails; Engramia's GitHub main writes
``CAST(:vec AS vector)``. This helper runs that fixed query, otherwise
identical to 0.6.6's search_similar (+ load + Pattern validation as in
engramia/reuse/matcher.py):

  1. embed the question with Engramia's own OpenAIEmbeddings (OPENAI_API_KEY,
     OPENAI_BASE_URL and optional ENGRAMIA_EMBEDDING_MODEL from the environment);
  2. SELECT key, 1 - (embedding <=> CAST(:vec AS vector)) FROM memory_embeddings
     WHERE key LIKE 'patterns%' AND tenant_id = :tid AND project_id = :pid
     ORDER BY embedding <=> CAST(:vec AS vector) LIMIT :limit;
  3. read each pattern from memory_data by (tenant_id, project_id, key) and
     validate it with engramia.types.Pattern.model_validate.

Usage:
    python tests/support/engramia_pg_recall.py --url postgres://... [--tenant T] [--project P]
        --question Q [--limit N]

Output (one JSON object on stdout):
    {"matches": [{"key", "task", "similarity"}, ...],  # valid patterns, best first
     "invalid": ["<key>", ...],    # found by the search, failed Pattern validation
     "missing": ["<key>", ...],    # found by the search, no memory_data row in scope
     "pattern_count": n,           # memory_data keys LIKE 'patterns%' in scope (count_patterns)
     "embedding_count": n}         # memory_embeddings rows LIKE 'patterns%' in scope
"""

from __future__ import annotations

import argparse
import os

from _engram_support import HelperError, run, sqlalchemy_url

PATTERNS_PREFIX = "patterns"  # engramia._util.PATTERNS_PREFIX in 0.6.6


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="postgres://user@host:port/db")
    ap.add_argument("--tenant", default="default")
    ap.add_argument("--project", default="default")
    ap.add_argument("--question", required=True)
    ap.add_argument("--limit", type=int, default=5)
    args = ap.parse_args()

    sa_url = sqlalchemy_url(args.url)
    if not os.environ.get("OPENAI_API_KEY"):
        raise HelperError(
            "OPENAI_API_KEY is not set: Engramia's OpenAIEmbeddings needs it "
            "(with OPENAI_BASE_URL pointing at the stand-in server in tests)"
        )

    from engramia.providers.openai import OpenAIEmbeddings
    from engramia.types import Pattern
    from pydantic import ValidationError
    from sqlalchemy import create_engine, text

    try:
        from engramia.providers.postgres import _vec_to_pg  # Engramia's own vector literal
    except ImportError:  # pragma: no cover - same formatting as 0.6.6

        def _vec_to_pg(embedding: list[float]) -> str:
            return "[" + ",".join(f"{v:.8f}" for v in embedding) + "]"

    model = os.environ.get("ENGRAMIA_EMBEDDING_MODEL", "text-embedding-3-small")
    try:
        embedding = OpenAIEmbeddings(model=model).embed(args.question)
    except Exception as exc:  # noqa: BLE001
        raise HelperError(f"embedding the question with Engramia's OpenAIEmbeddings failed: {exc}") from exc

    scope = {"tid": args.tenant, "pid": args.project}
    prefix = f"{_escape_like(PATTERNS_PREFIX)}%"
    engine = create_engine(sa_url)
    try:
        with engine.connect() as conn:
            dim = conn.execute(
                text(
                    "SELECT atttypmod FROM pg_attribute "
                    "WHERE attrelid = 'memory_embeddings'::regclass AND attname = 'embedding'"
                )
            ).scalar_one()
            if dim > 0 and len(embedding) != dim:
                raise HelperError(
                    f"query embedding has {len(embedding)} dimensions, memory_embeddings.embedding is vector({dim})"
                )
            rows = conn.execute(
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
                {"vec": _vec_to_pg(embedding), "prefix": prefix, "limit": args.limit, **scope},
            ).fetchall()

            matches, invalid, missing = [], [], []
            for key, similarity in rows:
                data = conn.execute(
                    text("SELECT data FROM memory_data WHERE key = :key AND tenant_id = :tid AND project_id = :pid"),
                    {"key": key, **scope},
                ).scalar_one_or_none()
                if data is None:
                    missing.append(key)
                    continue
                try:
                    pattern = Pattern.model_validate(data)
                except (ValidationError, ValueError, KeyError):
                    invalid.append(key)
                    continue
                matches.append({"key": key, "task": pattern.task, "similarity": float(similarity)})

            pattern_count = conn.execute(
                text(
                    "SELECT COUNT(*) FROM memory_data WHERE key LIKE :prefix ESCAPE '\\' "
                    "AND tenant_id = :tid AND project_id = :pid"
                ),
                {"prefix": prefix, **scope},
            ).scalar_one()
            embedding_count = conn.execute(
                text(
                    "SELECT COUNT(*) FROM memory_embeddings WHERE key LIKE :prefix ESCAPE '\\' "
                    "AND tenant_id = :tid AND project_id = :pid"
                ),
                {"prefix": prefix, **scope},
            ).scalar_one()
    finally:
        engine.dispose()

    return {
        "matches": matches,
        "invalid": invalid,
        "missing": missing,
        "pattern_count": int(pattern_count),
        "embedding_count": int(embedding_count),
    }


if __name__ == "__main__":
    run(main)
