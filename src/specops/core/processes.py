"""Processes that die with their parent, and pid files that cannot name a stranger.

`die_with_parent` asks Linux to signal this process when its parent dies
(PR_SET_PDEATHSIG), then closes the race the request leaves open: a parent that
died before the call has already handed its child to another reaper, which the
child sees as a changed parent pid. `identity` / `is_running` record and check
a process by pid *and* its start time and command line (from /proc), so a pid
the kernel reused for another program is never taken for the one recorded.
`run_tied` runs a command (`dvc repro` and the stages it starts) in a process
group of its own that dies with the caller, even a caller killed outright.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1
GROUP_DRAIN_S = 5.0  # how long a tied group gets between SIGTERM and SIGKILL


def die_with_parent(expected_parent: int, signum: int = signal.SIGTERM) -> None:
    """Be sent `signum` when the parent dies; exit now if `expected_parent` is already gone.

    On systems without prctl the parent-pid check still runs once; callers that live long should also
    watch `os.getppid()` against `expected_parent`.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:
        raise SystemExit(f"parent {expected_parent} died before this process could watch it")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    fields = text[text.rindex(b")") + 2:].split()
    return int(fields[19])  # fields 3.. follow the name: field 22 is at index 22 - 3


def command_line(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return [arg.decode(errors="replace") for arg in cmdline.read().split(b"\0")[:-1]]
    except OSError:
        return None


def identity(pid: int | None = None) -> dict[str, Any]:
    """What a pid file records: {"pid", "starttime", "cmdline"} (the last two None where /proc is missing)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "starttime": start_time(pid), "cmdline": command_line(pid)}


def is_running(recorded: dict[str, Any]) -> bool:
    """Whether the process a pid file recorded still runs: the pid lives, and is still the same program
    started at the same moment. A record without a start time (an older file) is not trusted where /proc
    can tell, since its pid may have been reused."""
    pid = recorded.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours, whatever it is
        return False
    now = start_time(pid)
    if now is None:  # no /proc (not Linux), or gone in between: the signal check is all there is
        return not os.path.isdir("/proc/self")
    return recorded.get("starttime") == now and recorded.get("cmdline") == command_line(pid) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return True
    return text[text.rindex(b")") + 2:].split()[0] == b"Z"


def run_tied(command: list[str], **popen: Any) -> int:
    """Run `command` to its end and return its exit code; it and everything it starts die with this process.

    A guard process (`python -m specops.core.processes`) leads a new session and process group, runs the
    command in it, and ends the whole group (SIGTERM, then SIGKILL) when this process dies, however it
    dies (PR_SET_PDEATHSIG, or its parent pid changing). An exception here (Ctrl-C) ends the group too.
    """
    guard = subprocess.Popen([sys.executable, "-m", "specops.core.processes", str(os.getpid()), *command],
                             start_new_session=True, **popen)
    try:
        return guard.wait()
    except BaseException:
        _end_group(guard.pid)
        guard.wait()
        raise


def _end_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return


def _guard(parent: int, command: list[str]) -> int:
    """The guard's life: run `command` in this group; if the parent dies, end the group."""
    orphaned = []
    signal.signal(signal.SIGTERM, lambda signum, frame: orphaned.append(signum))
    die_with_parent(parent)
    child = subprocess.Popen(command)
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if orphaned or os.getppid() != parent:
                break
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=GROUP_DRAIN_S)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(0, signal.SIGKILL)  # the guard included: nothing of the group is left
    return 1


if __name__ == "__main__":
    sys.exit(_guard(int(sys.argv[1]), sys.argv[2:]))
