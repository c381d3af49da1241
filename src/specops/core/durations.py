"""Durations as specs write them: Argo's short form (`500ms`, `30s`, `5m`, `1h`, `7d`) or
ISO 8601 as Azure ML writes its windows (`PT1M`, `P7D`, `P1DT12H`).

One parser for both, so every duration field accepts either; ISO 8601 is read
by pydantic's own timedelta parser, and `iso` turns either form into the ISO
text Azure ML expects.
"""
from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_SHORT = re.compile(r"^(?P<amount>[0-9]+)(?P<unit>ms|s|m|h|d)$")
_UNIT = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
         "h": timedelta(hours=1), "d": timedelta(days=1)}
_ISO = re.compile(r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_TIMEDELTA = TypeAdapter(timedelta)


def parse_duration(text: str) -> timedelta:
    """A duration of zero or more; ValueError naming both accepted forms otherwise."""
    short = _SHORT.match(text) if isinstance(text, str) else None
    if short is not None:
        return int(short["amount"]) * _UNIT[short["unit"]]
    if isinstance(text, str) and _ISO.match(text):
        try:
            return _TIMEDELTA.validate_python(text)
        except ValidationError:
            pass
    raise ValueError(f"invalid duration {text!r}: expected a number with a unit (500ms, 30s, 5m, 1h, 7d) "
                     f"or an ISO 8601 duration (PT1M, P7D, P1DT12H)")


def seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def iso(text: str) -> str:
    """The ISO 8601 form of a duration in either form (Azure ML's windows)."""
    if not _SHORT.match(text):
        return text
    total = parse_duration(text)
    days, rest = total.days, total.seconds
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs + total.microseconds / 1e6:g}S" if secs or total.microseconds else ""
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + secs_text
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "" if days else "T0S")
