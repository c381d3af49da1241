"""Live traffic weights: how a rollout shifts traffic without restarting the server.

The server starts from the spec's `traffic` and `mirror_traffic`, written to
.specops/endpoints/<name>/traffic.json; `set_traffic` replaces that file
atomically and every worker picks it up within POLL_SECONDS. The rollout
controller (and a rollback) calls `set_traffic`; the spec stays the desired end
state.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from specops.core.files import atomic_write
from specops.errors import SpecopsError
from specops.spec.endpoints import MAX_MIRROR_PERCENT

POLL_SECONDS = 0.1
log = logging.getLogger("specops.serving")
Fault = Callable[[str, str | None], None]  # (file name, why it cannot be used, or None once it can)


class TrafficFile(BaseModel):
    """traffic.json, checked on every write and every read: weights that sum to 100, one mirror at most."""

    model_config = ConfigDict(extra="forbid", strict=True)
    traffic: dict[str, int] = Field(min_length=1)
    mirror_traffic: dict[str, int] = {}

    @model_validator(mode="after")
    def _weights(self) -> TrafficFile:
        if sum(self.traffic.values()) != 100 or any(w < 0 for w in self.traffic.values()):
            raise ValueError(f"traffic weights must be >= 0 and sum to 100 (got {self.traffic})")
        mirror = self.mirror_traffic
        if len(mirror) > 1 or any(not 0 <= p <= MAX_MIRROR_PERCENT or self.traffic.get(n, 0) for n, p in mirror.items()):
            raise ValueError(f"mirror traffic goes to one deployment without live traffic, at most {MAX_MIRROR_PERCENT}% (got {mirror})")
        return self


def traffic_file(state_dir: Path | str) -> Path:
    return Path(state_dir) / "traffic.json"


def set_traffic(state_dir: Path | str, deployments: list[str], traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
    """Check and publish new weights; raises SpecopsError naming what is wrong."""
    mirror = mirror or {}
    unknown = sorted((set(traffic) | set(mirror)) - set(deployments))
    if unknown:
        raise SpecopsError(f"no deployment named {', '.join(unknown)} (deployments: {', '.join(deployments)})")
    try:
        checked = TrafficFile(traffic=traffic, mirror_traffic=mirror)
    except ValueError as exc:  # pydantic's ValidationError: the validator's message is the useful part
        raise SpecopsError(_reason(exc)) from None
    atomic_write(traffic_file(state_dir), checked.model_dump_json())  # readers see the old file or the new, never half


def read_traffic(state_dir: Path | str) -> tuple[dict[str, int], dict[str, int]]:
    """The published weights; raises ValueError (pydantic's) for a file of the wrong shape, OSError if unreadable."""
    data = TrafficFile.model_validate_json(traffic_file(state_dir).read_bytes())
    return data.traffic, data.mirror_traffic


async def watch_traffic(state_dir: Path | str, apply: Callable[[dict[str, int], dict[str, int]], None],
                        fault: Fault | None = None) -> None:
    """Call `apply(traffic, mirror)` now and whenever the file changes."""
    async def changed(_: Path) -> None:
        apply(*read_traffic(state_dir))

    await watch_file(traffic_file(state_dir), changed, fault)


async def watch_file(path: Path, on_change: Callable[[Path], Awaitable[None]], fault: Fault | None = None) -> None:
    """Await `on_change(path)` now and whenever the file is replaced.

    A file that cannot be read or used (missing, not JSON, the wrong shape, or `on_change` failing on it)
    keeps what is in force: the watch goes on, logs the problem once, reports it to `fault`, and tries
    again each poll; the first change that works clears the fault.
    """
    seen: int | None = None
    problem: str | None = None
    while True:
        try:
            mtime = path.stat().st_mtime_ns
            if mtime != seen:
                await on_change(path)
                seen = mtime
                if problem is not None:
                    log.warning("%s is in force again", path.name)
                    problem = None
                    if fault:
                        fault(path.name, None)
        except Exception as exc:  # whatever the file holds, the watch must live on (cancellation is no Exception)
            found = f"cannot use {path.name}, keeping the last good one: {_reason(exc)}"
            if found != problem:
                log.error("%s", found)
                problem = found
                if fault:
                    fault(path.name, found)
        await asyncio.sleep(POLL_SECONDS)


def _reason(exc: Exception) -> str:
    """One line: a pydantic error's first message (without its URL), else the exception's first line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(map(str, first.get("loc", ())))
        return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
