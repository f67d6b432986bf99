#!/usr/bin/env python3
"""Recall from an Engramia JSON data directory with Engramia 0.6.6 itself.

Does what engramia-target.md "Reading it back" shows: ENGRAMIA_STORAGE=json,
ENGRAMIA_DATA_PATH, ENGRAMIA_LLM_PROVIDER=none, embeddings from Engramia's
factory (OpenAIEmbeddings; OPENAI_API_KEY / OPENAI_BASE_URL / optional
ENGRAMIA_EMBEDDING_MODEL come from the environment, so tests point them at
the stand-in OpenAI server), Memory(...), set_scope(Scope(...)), m.recall().

Engramia's recall silently falls back to keyword (Jaccard) search when the
embedding call fails (engramia/core/services/recall.py logs "Embedding
provider failed during recall, falling back to keyword search"). This helper
listens on Engramia's loggers and reports that as "used_keyword_fallback", so a
test can fail when embeddings did not work.

Usage:
    python tests/support/engramia_json_recall.py --data DIR [--tenant T] [--project P]
        --question Q [--limit N] [--skill S ...]

Output (one JSON object on stdout):
    {"matches": [{"key", "task", "similarity", "success_score", "design"}, ...],
     "skills": {"<skill>": ["<pattern key>", ...]},   # Memory.find_by_skills([skill])
     "pattern_count": n,                              # Memory.metrics.pattern_count in scope
     "used_keyword_fallback": false,
     "warnings": ["<every WARNING+ Engramia logged>", ...]}
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _engram_support import HelperError, run

FALLBACK_MARKER = "falling back to keyword search"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - never let logging break the read-back
            self.messages.append(f"{record.name}: {record.msg!r}")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="Engramia JSON data directory (ENGRAMIA_DATA_PATH)")
    ap.add_argument("--tenant", default="default")
    ap.add_argument("--project", default="default")
    ap.add_argument("--question", required=True, help="the task to recall for")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--skill", action="append", default=[], help="also list find_by_skills([SKILL]) (repeatable)")
    args = ap.parse_args()

    src = Path(args.data)
    if not src.is_dir():
        raise HelperError(f"--data {src} is not a directory")
    if not os.environ.get("OPENAI_API_KEY"):
        raise HelperError(
            "OPENAI_API_KEY is not set: Engramia's OpenAIEmbeddings needs it "
            "(with OPENAI_BASE_URL pointing at the stand-in server in tests)"
        )

    # Engramia's loggers: show warnings on stderr for the test log, and collect them.
    collector = _Collector()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    eng_log = logging.getLogger("engramia")
    eng_log.addHandler(collector)
    if eng_log.getEffectiveLevel() > logging.WARNING:
        eng_log.setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="engramia-recall-") as tmp:
        # Read from a copy: recall() writes back into the store (mark_reused bumps
        # reuse_count and success_score in each returned pattern file), and Memory()
        # writes metadata/embedding_config.json when absent. The directory under
        # test must stay exactly as engram wrote it.
        data = Path(tmp) / "data"
        shutil.copytree(src, data, symlinks=True)

        os.environ.update(
            ENGRAMIA_STORAGE="json",
            ENGRAMIA_DATA_PATH=str(data),
            ENGRAMIA_LLM_PROVIDER="none",
        )
        from engramia import Memory
        from engramia._context import set_scope
        from engramia._factory import make_embeddings, make_storage
        from engramia.types import Scope

        embeddings = make_embeddings()
        if embeddings is None:
            raise HelperError("Engramia made no embedding provider (ENGRAMIA_EMBEDDING_MODEL=none or openai missing)")
        m = Memory(embeddings=embeddings, storage=make_storage())
        set_scope(Scope(tenant_id=args.tenant, project_id=args.project))

        pattern_count = m.metrics.pattern_count
        skills = {s: [match.pattern_key for match in m.find_by_skills([s])] for s in args.skill}
        matches = m.recall(task=args.question, limit=args.limit)

    return {
        "matches": [
            {
                "key": match.pattern_key,
                "task": match.pattern.task,
                "similarity": match.similarity,
                "success_score": match.pattern.success_score,
                "design": match.pattern.design,
            }
            for match in matches
        ],
        "skills": skills,
        "pattern_count": pattern_count,
        "used_keyword_fallback": any(FALLBACK_MARKER in msg for msg in collector.messages),
        "warnings": collector.messages,
    }


if __name__ == "__main__":
    run(main)
