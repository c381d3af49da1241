"""Live traffic weights: how a rollout shifts traffic without restarting the server.

The server starts from the spec's `traffic` and `mirror_traffic`, written to
.specops/endpoints/<name>/traffic.json; `set_traffic` replaces that file
atomically and every worker picks it up within POLL_SECONDS. The rollout
controller (and a rollback) calls `set_traffic`; the spec stays the desired end
state.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from specops.errors import SpecopsError
from specops.spec.endpoints import MAX_MIRROR_PERCENT

POLL_SECONDS = 0.1


def traffic_file(state_dir: Path | str) -> Path:
    return Path(state_dir) / "traffic.json"


def set_traffic(state_dir: Path | str, deployments: list[str], traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
    """Check and publish new weights; raises SpecopsError naming what is wrong."""
    mirror = mirror or {}
    unknown = sorted((set(traffic) | set(mirror)) - set(deployments))
    if unknown:
        raise SpecopsError(f"no deployment named {', '.join(unknown)} (deployments: {', '.join(deployments)})")
    if sum(traffic.values()) != 100 or any(w < 0 for w in traffic.values()):
        raise SpecopsError(f"traffic weights must be >= 0 and sum to 100 (got {traffic})")
    if len(mirror) > 1 or any(not 0 <= p <= MAX_MIRROR_PERCENT or traffic.get(n, 0) for n, p in mirror.items()):
        raise SpecopsError(f"mirror traffic goes to one deployment without live traffic, at most {MAX_MIRROR_PERCENT}% (got {mirror})")
    path = traffic_file(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"traffic": traffic, "mirror_traffic": mirror}))
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def read_traffic(state_dir: Path | str) -> tuple[dict[str, int], dict[str, int]]:
    data = json.loads(traffic_file(state_dir).read_text())
    return data["traffic"], data["mirror_traffic"]


async def watch_traffic(state_dir: Path | str, apply: Callable[[dict[str, int], dict[str, int]], None]) -> None:
    """Call `apply(traffic, mirror)` now and whenever the file changes."""
    async def changed(_: Path) -> None:
        apply(*read_traffic(state_dir))

    await watch_file(traffic_file(state_dir), changed)


async def watch_file(path: Path, on_change: Callable[[Path], Awaitable[None]]) -> None:
    """Await `on_change(path)` now and whenever the file is replaced; an unreadable moment keeps what is in force."""
    seen = None
    while True:
        try:
            mtime = path.stat().st_mtime_ns
            if mtime != seen:
                await on_change(path)
                seen = mtime
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(POLL_SECONDS)
