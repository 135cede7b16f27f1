"""One benchmark group in its own process, on the database named by DATABASE_URL.

`python -m bench` starts this once per group (database and broker) because the
settings (DATABASE_URL, JOBDECK_BROKER) are read when Django starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from importlib import import_module


def load(path: str) -> Callable:
    module, name = path.split(":")
    return import_module(module).__dict__[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", required=True)
    parser.add_argument("--bench", action="append", default=[], help="name=module:function")
    parser.add_argument("--once", default="", help="comma-separated names run only once")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.db import connection

    from .common import Ctx

    once = set(filter(None, args.once.split(",")))
    ctx = Ctx(n=args.n, quick=args.quick, group=args.group)
    figures: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT version()"
            if connection.vendor == "postgresql"
            else "SELECT 'SQLite ' || sqlite_version()"
        )
        database = cur.fetchone()[0].split(" on ")[0]
    for spec in args.bench:
        name, path = spec.split("=", 1)
        fn = load(path)
        for run in range(1 if name in once else args.runs):
            print(f"[{args.group}] {name} run {run + 1}", file=sys.stderr, flush=True)
            ctx.partial = {}
            try:
                for key, value in fn(ctx).items():
                    figures.setdefault(key, []).append(float(value))
            except Exception as exc:
                traceback.print_exc()
                for key, value in ctx.partial.items():
                    figures.setdefault(key, []).append(float(value))
                errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
                break
    with open(args.out, "w") as fh:
        json.dump(
            {"figures": figures, "notes": ctx.notes, "errors": errors, "database": database}, fh
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
