"""Thousands of mutated specs: the loader answers with SpecErrors or a SpecSet, never a traceback."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from specops.errors import SpecErrors
from specops.spec import load_specs

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p.relative_to(REPO / "specs").as_posix() for p in (REPO / "specs").rglob("*.yaml"))
WORKDIR = Path(tempfile.mkdtemp(prefix="specops-fuzz-"))
shutil.copytree(REPO / "specs", WORKDIR / "specs")
ORIGINAL = {name: (REPO / "specs" / name).read_text() for name in FILES}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["${X}", "{{ values.max_parallel }}", "0 25 * * *", "- a", "[", "\t"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)


def load_with(name: str, text: str) -> None:
    target = WORKDIR / "specs" / name
    target.write_text(text)
    try:
        load_specs(WORKDIR)
    except SpecErrors as exc:
        assert exc.errors and all(e.file and e.line >= 1 and e.message for e in exc.errors)
    finally:
        target.write_text(ORIGINAL[name])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(FILES), data=st.data())
def test_text_mutations(name: str, data) -> None:
    text = ORIGINAL[name]
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 20)))
        insert = data.draw(st.sampled_from(["", ":", " ", "\n", "\t", "- ", "{", "}", "[", "'", '"', "{%", "{{", "&a", "*a", "!!", "#", "x: 1\n"]))
        text = text[:start] + insert + text[end:]
    load_with(name, text)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(FILES), data=st.data())
def test_structural_mutations(name: str, data) -> None:
    yaml = YAML(typ="safe")
    docs = list(yaml.load_all(ORIGINAL[name].replace("{{ values.max_parallel }}", "0")))
    doc = data.draw(st.sampled_from(docs))
    path = data.draw(st.sampled_from(list(_paths(doc))[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(values)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    from io import StringIO

    buffer = StringIO()
    yaml.dump_all(docs, buffer)
    load_with(name, buffer.getvalue())
