"""Endpoint keys: generated at create, kept under .specops/ (never in specs or git), rotatable.

Like Azure ML, an endpoint has a primary and a secondary key and accepts
either, so clients can move to the other key before one is regenerated.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Literal

from specops.errors import SpecopsError

KeyType = Literal["primary", "secondary"]
KEY_TYPES: tuple[KeyType, ...] = ("primary", "secondary")
RECHECK_SECONDS = 1.0  # how stale a running server's copy of the keys may get after a rotation
log = logging.getLogger("specops.serving")


def keys_file(state_dir: Path) -> Path:
    return state_dir / "keys.json"


def ensure_keys(state_dir: Path) -> dict[str, str]:
    """Return the endpoint's keys, generating both on first use."""
    path = keys_file(state_dir)
    if path.exists():
        return read_keys(path)
    return _write(path, {key_type: _new_key() for key_type in KEY_TYPES})


def regenerate_key(state_dir: Path, key_type: KeyType = "primary") -> dict[str, str]:
    """Replace one key; a running server accepts the new one within RECHECK_SECONDS."""
    if key_type not in KEY_TYPES:
        raise SpecopsError(f"key type must be one of {', '.join(KEY_TYPES)} (got {key_type!r})")
    keys = ensure_keys(state_dir)
    keys[key_type] = _new_key()
    return _write(keys_file(state_dir), keys)


def read_keys(path: Path) -> dict[str, str]:
    try:
        keys = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecopsError(f"cannot read endpoint keys {path}: {exc}") from None
    if not isinstance(keys, dict) or sorted(keys) != sorted(KEY_TYPES) or not all(isinstance(k, str) for k in keys.values()):
        raise SpecopsError(f"{path} is not a keys file (expected primary and secondary); delete it to generate new keys")
    return keys


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def _write(path: Path, keys: dict[str, str]) -> dict[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Owner-only from the first byte; the rename makes the switch atomic for readers.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(keys, out)
    os.replace(tmp, path)
    return keys


class KeyChecker:
    """What a server worker asks on every request; rereads the file when it changed."""

    def __init__(self, state_dir: Path):
        self.path = keys_file(state_dir)
        self._keys: list[bytes] = []
        self._mtime = -1
        self._checked = 0.0
        self.fault: str | None = None  # why the file's last change could not be used (the last good keys stay)
        self._reload()

    def accepts(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        now = time.monotonic()
        if now - self._checked > RECHECK_SECONDS:
            self._checked = now
            self._reload()
        try:
            offered = authorization[len("Bearer "):].encode()
        except UnicodeEncodeError:  # bytes that are no UTF-8 (aiohttp keeps them as surrogates): no key of ours
            return False
        # Compare against every key, without short-circuit, in constant time per key.
        return sum(hmac.compare_digest(offered, key) for key in self._keys) > 0

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return  # deleted under a running server: keep serving with the keys it has
        if mtime == self._mtime:
            return
        try:  # a file rewritten in place (not by _write) can be read half written: keep the last good keys
            keys = [key.encode() for key in read_keys(self.path).values()]
        except SpecopsError as exc:
            if self._keys:
                if self.fault is None:
                    log.error("cannot use %s, keeping the last good keys: %s", self.path.name, exc)
                self.fault = str(exc)
                return
            raise
        self._keys, self._mtime, self.fault = keys, mtime, None
