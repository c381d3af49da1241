"""Over ten thousand mutated specs, at three levels: the file's bytes, its YAML text, its parsed documents.

Every case ends in a SpecSet or in SpecErrors whose every entry says where (file, line, column) and
what: never another exception, and never slowly. A case loads, in memory, the mutated file with the
example's Project (its environment values render the templates), so each case takes a few milliseconds.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from specops.errors import SpecErrors
from specops.spec.loader import load_files

REPO = Path(__file__).resolve().parents[2]
SPECS = {p.relative_to(REPO).as_posix(): p.read_bytes() for p in sorted((REPO / "specs").rglob("*.yaml"))}
NAMES = sorted(SPECS)
PROJECT = "specs/project.yaml"
# A correctness bound, not a benchmark: the loader's limits must make every input cheap (a case
# takes milliseconds), so one that takes seconds is a hole in them.
CASE_SECONDS = 2.0  # CPU seconds: a bound on pathological inputs, not a benchmark (a busy machine waits, it does not count)
fuzz = settings(max_examples=3500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# One draw of bytes per case, read as the case's edits: several times cheaper than a draw per
# choice, and a failing case still shrinks, towards zero bytes: fewer and simpler edits.
programs = st.binary(min_size=32, max_size=32)


class Edits:
    """Choices read from drawn bytes; all zero once they run out."""

    def __init__(self, program: bytes) -> None:
        self.program, self.at = program, 0

    def below(self, n: int) -> int:
        chunk = self.program[self.at : self.at + 2]
        self.at += 2
        return int.from_bytes(chunk, "big") % n if n > 0 else 0

    def pick(self, options: list):
        return options[self.below(len(options))]

    def take(self, n: int) -> bytes:
        chunk = self.program[self.at : self.at + n]
        self.at += n
        return chunk


def load_with(name: str, data: bytes) -> None:
    note(f"{name}:\n{data!r}")
    elapsed = timed_load(name, data)
    if elapsed >= CASE_SECONDS:  # once more: a hole in the limits is slow every time, a collector pause once
        elapsed = min(elapsed, timed_load(name, data))
    assert elapsed < CASE_SECONDS, f"{name} took {elapsed:.2f} CPU seconds to load, twice"


def timed_load(name: str, data: bytes) -> float:
    start = time.process_time()
    try:
        load_files(REPO, {PROJECT: SPECS[PROJECT], name: data})
    except SpecErrors as exc:
        unplaced = [e for e in exc.errors if not (e.file and e.line >= 1 and e.column >= 1 and e.message)]
        assert exc.errors and not unplaced, f"errors without a place: {unplaced}"
    return time.process_time() - start


# --- bytes: what a wrong encoding, a bad merge or a binary file saved as .yaml leave

BYTES = [
    b"\xe9",  # Latin-1 é
    b"\x00",
    b"\xef\xbb\xbf",  # a UTF-8 byte order mark: allowed at the start only
    b"\xff\xfe", b"\xfe\xff",  # UTF-16 byte order marks
    b"\xc3",  # a truncated two-byte sequence
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xc0\xaf",  # overlong
    b"\x1b", b"\x7f", b"\x0c", b"\r", b"\t", b"\n",
    b"\xc2\x85", "\u2028".encode(),  # line breaks to YAML, not to bytes.count(b"\n")
]


@fuzz
@given(name=st.sampled_from(NAMES), program=programs)
def test_byte_mutations(name: str, program: bytes) -> None:
    edits, blob = Edits(program), SPECS[name]
    if edits.below(8) == 0:
        blob = program * (edits.below(8) + 1)  # binary junk altogether
    for _ in range(edits.below(4) + 1):
        start = edits.below(len(blob) + 1)
        end = min(len(blob), start + edits.below(9))
        insert = [b"", edits.pick(BYTES), edits.take(edits.below(4) + 1)][edits.below(3)]
        blob = blob[:start] + insert + blob[end:]
    load_with(name, blob)


# --- YAML text: syntax out of place, and the YAML and Jinja features a hostile file would use

FRAGMENTS = [
    "", ":", " ", "\n", "\t", "- ", "? ", "{", "}", "[", "]", ",", "'", '"', "#", "|\n", ">-\n", "x: 1\n", "--- ", "\n...\n",
    "&a ", "*a", "&a [1, 2] ", "<<: *a\n", "<<: {x: 1}\n", "*a : 1\n", "? [a]\n: 1\n",
    "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ", "!!set ", "!!map ", "!!seq ", "!!omap ",
    "!!python/object/apply:os.system ", "!local ", "! ", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n",
    "{%", "{{", "%}", "}}", "{#", "{{ 1/0 }}", "{{ values }}", "{{ nope }}", "{{ values.max_parallel + 'x' }}",
    "{% if env.name == 'prod' %}\n", "{% endif %}\n", "{% for i in range(3) %}\n- {{ i }}\n{% endfor %}\n",
    "{{ '\\ud800' }}", "{{ '\\x01' }}", "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    "9" * 5000, "2001-13-45", "2001-02-03 04:05:06 +99", "0x", "0o9", "1e999", ".nan", "~", "null", "yes", "=", "<<",
    "[" * 70, "- " * 70, "{a: " * 70, "\u2028", "\x85", "\ufeff", "é",
]


@fuzz
@given(name=st.sampled_from(NAMES), program=programs)
def test_yaml_mutations(name: str, program: bytes) -> None:
    edits, text = Edits(program), SPECS[name].decode()
    for _ in range(edits.below(3) + 1):
        lines = text.split("\n")
        i, j = edits.below(len(lines)), edits.below(len(lines))
        edit = edits.below(7)
        if edit == 0:
            lines[i] = " " * (edits.below(4) + 1) + lines[i]
        elif edit == 1:
            lines[i] = lines[i][min(edits.below(4) + 1, len(lines[i]) - len(lines[i].lstrip(" "))) :]
        elif edit == 2:
            lines.insert(j, lines[i])
        elif edit == 3:
            del lines[i]
        elif edit == 4:
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == 5:
            start = edits.below(len(lines[i]) + 1)
            lines[i] = lines[i][:start] + edits.pick(FRAGMENTS) + lines[i][start + edits.below(20) :]
        else:  # a new value for a key: the nearest `key: value` line at or after i
            k = next((k for k in [*range(i, len(lines)), *range(i)] if ": " in lines[k]), i)
            lines[k] = lines[k].split(": ", 1)[0] + ": " + edits.pick(FRAGMENTS)
        text = "\n".join(lines)
    load_with(name, text.encode())


# --- documents: valid YAML with values of the wrong type, fields missing, unknown keys, other kinds

DOCUMENTS = {name: list(yaml.load_all(data, Loader=yaml.CSafeLoader)) for name, data in SPECS.items()}
SCALARS = [
    None, True, False, 0, -1, 1, 10**6, 2**70, 0.5, -1e300, math.inf, math.nan, "", "x", "é", "\x00", "\u2028", "x" * 200,
    "${X}", "{{ values.max_parallel }}", "{{ nope }}", "{%", "0 25 * * *", "- a", "[", "\t", "a: b", "*a",
    "specops/v1", "Project", "Pipeline", "Gate", "Dataset", "FeatureSet", "Endpoint", "Monitor", "SLO", "Gizmo",
    "credit-risk", "credit-risk-training", "promotion", "canary-health", "credit-applications", "credit-features",
    "credit-scoring", "accuracy", "roc_auc", "data/credit.csv", "credit-risk@champion", "local", "prod",
]
KEYS = ["apiVersion", "kind", "metadata", "name", "spec", "steps", "checks", "", "x", 0, None, True]


def value(edits: Edits, depth: int = 0):
    kind = edits.below(4) if depth < 2 else 0
    if kind == 2:
        return [value(edits, depth + 1) for _ in range(edits.below(4))]
    if kind == 3:
        return {edits.pick(KEYS): value(edits, depth + 1) for _ in range(edits.below(4))}
    return edits.pick(SCALARS)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from paths(child, (*prefix, i))


@fuzz
@given(name=st.sampled_from(NAMES), program=programs)
def test_schema_mutations(name: str, program: bytes) -> None:
    edits, docs = Edits(program), copy.deepcopy(DOCUMENTS[name])
    for _ in range(edits.below(3) + 1):
        if not docs:
            break
        at = edits.below(len(docs))
        path = edits.pick(list(paths(docs[at])))
        parent, last = docs, at
        for part in path:
            parent, last = parent[last], part
        edit = edits.below(4)
        if edit == 0:
            parent[last] = value(edits)
        elif edit == 1:
            del parent[last]
        elif edit == 2 and isinstance(parent[last], dict):
            parent[last][edits.pick(KEYS)] = value(edits)
        else:
            parent[last] = [parent[last]]
    load_with(name, yaml.dump_all(docs, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True).encode())
