"""Small shared pieces of the read-back helpers in tests/support/.

The helpers are run as scripts with the venv's python (scripts/setup-python),
so this module is found next to them on sys.path. Each helper prints exactly
one JSON object on stdout and exits 0, or prints a clear message on stderr and
exits non-zero. They report what they read; the Rust tests do the asserting.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, NoReturn


class HelperError(Exception):
    """A failure with a message meant for the test log."""


def fail(message: str, code: int = 1) -> NoReturn:
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "helper"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


def run(main: Callable[[], Any]) -> NoReturn:
    """Run main(); print its result as JSON, or fail with a message on stderr."""
    try:
        result = main()
    except HelperError as exc:
        fail(str(exc))
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - report anything, with a traceback
        traceback.print_exc(file=sys.stderr)
        fail(f"{type(exc).__name__}: {exc}")
    emit(result)
    sys.exit(0)


def sqlalchemy_url(url: str) -> str:
    """postgres://... or postgresql://... -> postgresql+psycopg2://...

    SQLAlchemy 2.x does not accept the bare ``postgres://`` scheme and wants the
    driver named; psycopg2-binary comes with engramia's ``postgres`` extra.
    """
    for scheme in ("postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme):]
    raise HelperError(f"not a PostgreSQL URL (want postgres://...): {url!r}")
