"""Run Jobdeck's benchmark suite: `./jobdeck bench [--quick] [--n N] [--runs R] [--only …]`.

Each group (a database and a broker) gets a throwaway database (PostgreSQL
`jobdeck_bench_<pid>_<group>`, or a SQLite file under var/), is migrated, and
runs in its own process with real `manage.py qcluster` processes (2 workers).
Prints a table and writes JSON to bench/results/<timestamp>.json and latest.json.
With --reuse-db (or JOBDECK_BENCH_REUSE_DB=1) the groups that can (REUSABLE) keep their
database, `jobdeck_bench_<group>`, for the next run, which tops up its seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .harness import ROOT

PG_ADMIN_URL = os.environ.get("JOBDECK_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("JOBDECK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
RESULTS = Path(os.environ.get("JOBDECK_BENCH_RESULTS") or ROOT / "bench" / "results")

# name → module:function
BENCHES = {
    "bare": "bench.bare:bench_bare",
    "drain": "bench.drain:bench_drain",
    "drain_q2": "bench.drain:bench_drain_q2",
    "drain_nosync": "bench.drain:bench_drain_nosync",
    "drain_batched": "bench.drain:bench_drain_batched",
    "drain_celery": "bench.drain:bench_drain_celery",
    "create": "bench.create:bench_create",
    "pickup": "bench.pickup:bench_pickup",
    "pickup_redis": "bench.pickup:bench_pickup_redis",
    "scaleout": "bench.drain:bench_scaleout",
    "memory": "bench.memory:bench_memory",
    "bigdata": "bench.bigdata:bench_bigdata",
    "bigdata_10m": "bench.bigdata:bench_bigdata_10m",
    "metrics": "bench.metrics:bench_metrics",
    "flow_claim": "bench.flow:bench_flow_claim",
    "search": "bench.search:bench_search",
    "fanout": "bench.workflow:bench_fanout",
    "threads": "bench.threads:bench_threads",
}
ONCE = {"memory", "bigdata", "bigdata_10m", "metrics", "flow_claim", "search", "fanout"}
# group → (label, database, broker, benchmarks in order)
GROUPS: dict[str, tuple[str, str, str, list[str]]] = {
    "pg": (
        "PostgreSQL, ORM broker",
        "postgres",
        "orm",
        [
            *["bare", "drain", "drain_batched", "drain_q2", "drain_nosync", "create"],
            *["pickup", "scaleout", "memory"],
        ],
    ),
    "sqlite": (
        "SQLite (WAL), ORM broker",
        "sqlite",
        "orm",
        ["bare", "drain", "drain_batched", "create", "pickup"],
    ),
    "redis": (
        "PostgreSQL, Redis broker",
        "postgres",
        "redis",
        ["bare", "drain", "drain_batched", "drain_celery", "pickup_redis", "scaleout"],
    ),
    "big": ("PostgreSQL, 1,000,000 jobs", "postgres", "orm", ["bigdata"]),
    "big10m": ("PostgreSQL, 10,000,000 jobs", "postgres", "orm", ["bigdata_10m"]),
    "flow": ("PostgreSQL, flow control, 1,000,000 pending", "postgres", "orm", ["flow_claim"]),
    "scrape": ("PostgreSQL, 1,000,000 jobs: a /metrics scrape", "postgres", "orm", ["metrics"]),
    "find": ("PostgreSQL, 1,000,000 jobs: search, statistics", "postgres", "orm", ["search"]),
    "workflow": ("PostgreSQL, a 10,002-job fan-out/fan-in workflow", "postgres", "orm", ["fanout"]),
    "workflow_sqlite": (
        "SQLite, a 10,002-job fan-out/fan-in workflow",
        "sqlite",
        "orm",
        ["fanout"],
    ),
    "threads": ("PostgreSQL, sleeping jobs: threads per worker", "postgres", "orm", ["threads"]),
}


# Groups whose seed takes long enough to keep (--reuse-db); their benchmark reuses what
# the database holds.
REUSABLE = {"big10m"}


def _pg(sql: str, params: tuple[Any, ...] = ()) -> Any:
    import psycopg

    with psycopg.connect(f"{PG_ADMIN_URL}/postgres", autocommit=True) as conn:
        return conn.execute(sql, params).fetchall() if params else conn.execute(sql)


def create_database(kind: str, name: str, *, reuse: bool = False) -> str:
    """A fresh (or with `reuse`, the kept) migrated database; returns its DATABASE_URL."""
    if kind == "postgres":
        if not (reuse and _pg("SELECT 1 FROM pg_database WHERE datname = %s", (name,))):
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN_URL}/{name}"
    else:
        path = ROOT / "var" / f"{name}.sqlite3"
        path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    env = child_env(url, "orm", "migrate")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    return url


def drop_database(kind: str, name: str) -> None:
    if kind == "postgres":
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ROOT / 'var' / name}.sqlite3{suffix}").unlink(missing_ok=True)


def child_env(url: str, broker: str, group: str) -> dict[str, str]:
    env = dict(os.environ)
    modules = [m for m in env.get("JOBDECK_JOBTYPE_MODULES", "").split(",") if m]
    env.update(
        {
            "DATABASE_URL": url,
            "JOBDECK_BROKER": broker,
            "REDIS_URL": REDIS_URL,
            "JOBDECK_JOBTYPE_MODULES": ",".join([*modules, "bench.jobtypes"]),
            # A queue name of our own: other clusters on the same Redis never see it.
            "Q_CLUSTER_NAME_PREFIX": f"jobdeck-bench-{os.getpid()}-{group}",
            "SECRET_KEY": env.get("SECRET_KEY") or "bench-only-secret-key",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    return env


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("Django", "django-q2", "psycopg", "redis", "djangorestframework", "celery"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": os.getloadavg(),
    }


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "values": values,  # each run's, in order
    }


def bare_ratios(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each drain rate's median over the bare-queue limit's median (bench.bare), both
    measured in this run on the group's database server."""
    from .bare import BARE_KEY

    bare = figures.get(BARE_KEY, {}).get("median")
    if not bare:
        return {}
    return {
        key: s["median"] / bare
        for key, s in figures.items()
        if key != BARE_KEY and " drain " in f" {key} " and "/s" in key
    }


def print_table(results: dict[str, Any]) -> None:
    rows = [("group", "figure", "median", "min", "max", "runs", "x bare")]
    for group, data in results["groups"].items():
        ratios = data.get("bare_ratios", {})
        for key, s in data["figures"].items():
            rows.append(
                (
                    group,
                    key,
                    f"{s['median']:,.1f}",
                    f"{s['min']:,.1f}",
                    f"{s['max']:,.1f}",
                    str(s["runs"]),
                    f"{ratios[key]:.2f}" if key in ratios else "",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if j < 2 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for group, data in results["groups"].items():
        for note in data["notes"]:
            print(f"note [{group}]: {note}")
        for name, error in data["errors"].items():
            print(f"ERROR [{group}] {name}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, one run (a smoke test)")
    parser.add_argument("--n", type=int, help="jobs per drain/creation run (default 3000)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated benchmarks ({', '.join(BENCHES)}), groups "
        f"({', '.join(GROUPS)}) or group:benchmark (e.g. sqlite:create)",
    )
    parser.add_argument("--json-out", help="also write the JSON here")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        default=os.environ.get("JOBDECK_BENCH_REUSE_DB", "") not in ("", "0"),
        help=f"keep the databases of {', '.join(sorted(REUSABLE))} (jobdeck_bench_<group>) "
        "and reuse their seed on the next run (env JOBDECK_BENCH_REUSE_DB=1)",
    )
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 3000)
    runs = args.runs or (1 if args.quick else 3)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = {x for x in only if x.split(":")[-1] not in BENCHES and x not in GROUPS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "settings": {
            "n": n,
            "runs": runs,
            "quick": args.quick,
            "Q_WORKERS": 2,
            "Q_POLL": os.environ.get("Q_POLL", "0.02 (default)"),
            "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", "600 (default)"),
            "JOBDECK_DRAIN_SECONDS": os.environ.get("JOBDECK_DRAIN_SECONDS", "30 (default)"),
        },
        "groups": {},
    }
    for group, (label, kind, broker, names) in GROUPS.items():
        chosen = [
            x for x in names if not only or x in only or group in only or f"{group}:{x}" in only
        ]
        if not chosen:
            continue
        reuse = args.reuse_db and group in REUSABLE
        db = f"jobdeck_bench_{group}" if reuse else f"jobdeck_bench_{os.getpid()}_{group}"
        print(f"==> {label}: {', '.join(chosen)}", file=sys.stderr, flush=True)
        url = create_database(kind, db, reuse=reuse)
        try:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                cmd = [
                    sys.executable,
                    "-m",
                    "bench.child",
                    "--group",
                    group,
                    "--n",
                    str(n),
                    "--runs",
                    str(runs),
                    "--out",
                    out.name,
                    "--once",
                    ",".join(ONCE),
                ]
                cmd += [f"--bench={x}={BENCHES[x]}" for x in chosen]
                if args.quick:
                    cmd.append("--quick")
                subprocess.run(cmd, cwd=ROOT, env=child_env(url, broker, group), check=True)
                data = json.loads(Path(out.name).read_text())
        finally:
            if reuse:
                print(f"kept database {db} (--reuse-db)", file=sys.stderr)
            else:
                drop_database(kind, db)
        figures = {k: summarise(v) for k, v in data["figures"].items()}
        results["groups"][group] = {
            "label": label,
            "database": data["database"],
            "broker": broker,
            "figures": figures,
            "bare_ratios": bare_ratios(figures),
            "notes": data["notes"],
            "errors": data["errors"],
        }
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2, default=str)
    stamp = started.replace(":", "").replace("-", "")
    for path in [
        RESULTS / f"{stamp}.json",
        RESULTS / "latest.json",
        *([Path(args.json_out)] if args.json_out else []),
    ]:
        path.write_text(text)
    print(f"wrote {RESULTS / f'{stamp}.json'}", file=sys.stderr)
    return 1 if any(g["errors"] for g in results["groups"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
