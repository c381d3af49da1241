"""A no-change `specops apply` after a full run, as a ratio to that first run.

Copies the example project into a temporary git + DVC repository, times the
first `specops apply` (the whole lifecycle), then a second apply with nothing
changed (plan empty: DVC reports every stage current), then `dvc repro` on the
same tree (DVC's own no-op check, for comparison).
Run: .venv/bin/python bench/bench_apply.py
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(*cmd: str, cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def project(tmp: Path) -> Path:
    root = tmp / "proj"
    for name in ("specs", "src/credit_risk"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("params.yaml", "dvc.yaml", "requirements.lock"):
        shutil.copy(REPO / name, root / name)
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench", cwd=root)
    return root


def main() -> None:
    print(f"{date.today()} · {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp))
        first = sh(str(BIN / "specops"), "apply", cwd=root)
        again = min(sh(str(BIN / "specops"), "apply", cwd=root) for _ in range(3))
        repro = min(sh(str(BIN / "dvc"), "repro", cwd=root) for _ in range(3))
    print(f"first apply (full lifecycle, 5,000 rows, 3-candidate sweep): {first:7.2f} s")
    print(f"no-change apply (best of 3):                                  {again:7.2f} s  ratio {again / first:.3f}")
    print(f"no-change dvc repro, for comparison (best of 3):              {repro:7.2f} s  ratio {repro / first:.3f}")


if __name__ == "__main__":
    main()
