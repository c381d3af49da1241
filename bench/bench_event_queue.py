"""The retraining event queue: SQLite (now) vs the JSON-lines file it replaced, as the queue grows.

Both queues start from the same history of N events, each offered, started and
finished (three JSON lines apiece; the SQLite queue takes it in through its
one-time import of that file), then time `offer` of new events, `offer` of a
known id (refused), `mark` and `pending` in this process, the two queues
taking turns call by call. The JSON-lines queue
is the module as it was at the branch base, loaded from git history. Both are
durable at each write (fsync per line; SQLite synchronous=FULL in WAL mode).
Run: .venv/bin/python bench/bench_event_queue.py
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from specops.controller import events as sqlite_events

REPO = Path(__file__).resolve().parents[1]
JSONL_COMMIT = "ff949d6bd624997f5264b2275767efaf401abf3d"  # the branch base: the last JSON-lines queue
SIZES = (0, 100, 1_000, 10_000)
OFFERS = 60  # new events offered per size and queue


def jsonl_events(folder: Path) -> ModuleType:
    """The JSON-lines queue module, written out of git history into `folder` and imported from there."""
    path = folder / "jsonl_events.py"
    path.write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{JSONL_COMMIT}:src/specops/controller/events.py"],
                                    check=True, capture_output=True).stdout)
    spec = importlib.util.spec_from_file_location("jsonl_events", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def write_history(root: Path, events: int) -> None:
    """`events` retrains that ran: offered, started and done, in the JSON-lines queue's format."""
    path = root / ".specops" / "controller" / "events.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as out:
        for i in range(events):
            event = {"id": f"schedule:p:{i}", "pipeline": "p", "reason": "schedule", "detail": "cron 0 3 * * 1"}
            for record in ({"event": event, "status": "pending"}, {"id": event["id"], "status": "started"},
                           {"id": event["id"], "status": "done"}):
                out.write(json.dumps({"time": "2026-11-30T03:00:00+00:00", **record}, sort_keys=True) + "\n")


def interleaved(actions: dict[str, Callable[[int], object]], times: int) -> dict[str, list[float]]:
    """Milliseconds of each action's `times` calls, taking turns (order alternating) so that the shared
    disk's bad moments fall on both queues alike."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for i in range(times):
        for name in list(actions)[:: 1 if i % 2 else -1]:
            start = time.perf_counter()
            actions[name](i)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def fsync_ms(folder: Path, times: int = 50) -> float:
    """Median cost of appending one line and fsyncing it: the floor under every durable write."""
    samples = []
    with (folder / "probe").open("a") as out:
        for _ in range(times):
            start = time.perf_counter()
            out.write("x\n")
            out.flush()
            os.fsync(out.fileno())
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def measure(modules: dict[str, ModuleType], size: int, tmp: Path) -> dict[str, dict[str, list[float]]]:
    queues = {}
    for name, module in modules.items():
        write_history(tmp / name, size)
        queues[name] = module.EventQueue(tmp / name)
        queues[name].pending()  # SQLite: creates the table and imports the history, outside the timings
    known = {name: modules[name].Event("drift:p:0", "p", "drift") for name in modules}
    return {
        "offer": interleaved({n: lambda i, n=n: queues[n].offer(modules[n].Event(f"drift:p:{i}", "p", "drift"))
                              for n in modules}, OFFERS),
        "offer known id": interleaved({n: lambda i, n=n: queues[n].offer(known[n]) for n in modules}, 20),
        "mark": interleaved({n: lambda i, n=n: queues[n].mark(known[n], modules[n].STARTED) for n in modules}, 20),
        "pending": interleaved({n: lambda i, n=n: queues[n].pending() for n in modules}, 20),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        modules = {"JSON lines (before)": jsonl_events(Path(tmp)), "SQLite (now)": sqlite_events}
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"SQLite {sqlite_events.sqlite3.sqlite_version}, load {os.getloadavg()[0]:.1f}, "
              f"append+fsync of one line: {fsync_ms(Path(tmp)):.2f} ms (median)")
        print("| events recorded | queue | offer ms (median, min) | offer known id ms | mark ms | pending ms |")
        print("|---:|---|---:|---:|---:|---:|")
        for size in SIZES:
            folder = Path(tmp) / str(size)
            results = measure(modules, size, folder)
            for name in modules:
                offer = results["offer"][name]
                rest = " | ".join(f"{statistics.median(results[k][name]):.2f}" for k in ("offer known id", "mark", "pending"))
                print(f"| {size:,} | {name} | {statistics.median(offer):.2f}, {min(offer):.2f} | {rest} |")


if __name__ == "__main__":
    main()
