"""The benchmark suite still runs: its quick mode, one cheap benchmark, tiny N."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_creation_benchmark_runs_and_writes_its_json(tmp_path):
    postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    group = "pg" if postgres else "sqlite"
    env = {**os.environ, "JOBDECK_BENCH_RESULTS": str(tmp_path)}
    env.setdefault("SECRET_KEY", "bench-smoke-test-key")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--n", "20", "--only", f"{group}:create"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = json.loads((tmp_path / "latest.json").read_text())
    figures = latest["groups"][group]["figures"]
    assert any(key.startswith("bulk create jobs/s") for key in figures), figures
    assert figures["one-by-one job_create jobs/s (incl. wake-up message)"]["median"] > 0
    assert latest["machine"]["cpus"] >= 1
    assert "jobs/s" in proc.stdout
