"""Where monitors keep their state: .specops/monitors/<name>/ (cached baselines, and reports per window)."""
from __future__ import annotations

from pathlib import Path

from specops.core.paths import STATE_DIR


def monitors_dir(root: Path) -> Path:
    return root / STATE_DIR / "monitors"


def monitor_dir(root: Path, monitor: str) -> Path:
    return monitors_dir(root) / monitor


def reports_dir(root: Path, monitor: str) -> Path:
    """One folder per run's window end below this: reports/<YYYYMMDDTHHMMSSZ>/report.{json,html}."""
    return monitor_dir(root, monitor) / "reports"
