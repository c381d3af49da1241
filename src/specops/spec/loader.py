"""Read `specs/**/*.yaml` into validated Spec documents.

Every file is a Jinja2 template (rendered for one environment), then YAML,
then a pydantic model chosen by `kind`. Errors from all three layers, and from
the cross-reference checks, are collected and reported together, each with the
file, line and column in the *source* file the person edited.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor

from specops.errors import SpecError, SpecErrors, SpecopsError
from specops.spec.kinds import API_VERSION, KINDS, Document, Project

SPEC_DIR = "specs"
PROJECT_KIND = re.compile(r"^kind:\s*[\"']?Project[\"']?\s*$", re.MULTILINE)
Path_ = tuple[str | int, ...]


@dataclass
class Source:
    """Where a document came from, able to point at any field in it."""

    file: str
    positions: dict[Path_, tuple[int, int, int, int]]  # path -> key line/col, value line/col (0-based)
    line_map: list[int]  # rendered line (0-based) -> source line (1-based)

    def where(self, path: Path_, at_value: bool = False) -> tuple[int, int]:
        """Position of the key at `path` (or its value), else of the deepest part that exists."""
        while path not in self.positions:
            path = path[:-1]
        key_line, key_col, value_line, value_col = self.positions[path]
        line, col = (value_line, value_col) if at_value else (key_line, key_col)
        return self.line_map[min(line, len(self.line_map) - 1)], col + 1

    def error(self, path: Path_, message: str, at_value: bool = False) -> SpecError:
        line, col = self.where(path, at_value)
        return SpecError(self.file, line, col, dotted(path), message)


@dataclass
class SpecSet:
    """All documents of one project, rendered for one environment."""

    root: Path
    env: str
    documents: list[Document] = field(default_factory=list)
    sources: dict[str, Source] = field(default_factory=dict)  # doc.key -> Source
    broken: set[str] = field(default_factory=set)  # keys of documents that failed validation
    index: dict[str, Document] = field(default_factory=dict)  # doc.key -> document

    @property
    def project(self) -> Project:
        return next(d for d in self.documents if isinstance(d, Project))

    def of_kind(self, kind: type[Document]) -> list[Document]:
        return [d for d in self.documents if isinstance(d, kind)]

    def get(self, kind: type[Document], name: str) -> Document | None:
        return self.index.get(f"{kind.__name__}/{name}")

    def require(self, kind: type[Document], name: str) -> Document:
        """The named document; a SpecopsError listing the known names when there is none (for commands)."""
        found = self.get(kind, name)
        if found is None:
            raise SpecopsError(self.unknown(kind, name))
        return found

    def unknown(self, kind: type[Document], name: str) -> str:
        known = ", ".join(sorted(d.name for d in self.of_kind(kind))) or "none defined"
        return f"no {kind.__name__} named {name!r} (known: {known})"

    def add(self, doc: Document, source: Source) -> None:
        self.documents.append(doc)
        self.index[doc.key] = doc
        self.sources[doc.key] = source

    def error(self, doc: Document, path: Path_, message: str) -> SpecError:
        return self.sources[doc.key].error(path, message)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def spec_files(root: Path) -> list[Path]:
    folder = root / SPEC_DIR
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_specs(root: Path | str, env: str | None = None) -> SpecSet:
    """Load, render, validate and cross-check every spec; raise SpecErrors listing all problems."""
    from specops.spec.checks import cross_check

    root = Path(root).resolve()
    files = spec_files(root)
    if not files:
        raise SpecErrors([SpecError(f"{SPEC_DIR}/", 1, 1, "", "no spec files found (specs/**/*.yaml)")])
    errors: list[SpecError] = []
    raw = [(f, f.read_text(encoding="utf-8")) for f in files]

    project_values, env_name = _environment(root, raw, env, errors)
    specs = SpecSet(root=root, env=env_name)
    for path, text in raw:
        rel = path.relative_to(root).as_posix()
        for doc, source in _documents(rel, text, project_values, errors, specs.broken):
            if doc.key in specs.sources:
                first = specs.sources[doc.key].file
                errors.append(source.error(("metadata", "name"), f"duplicate {doc.key} (first defined in {first})"))
                continue
            specs.add(doc, source)
    projects = specs.of_kind(Project)
    if len(projects) > 1 or not (projects or any(k.startswith("Project/") for k in specs.broken)):
        errors.append(SpecError(f"{SPEC_DIR}/", 1, 1, "", f"expected exactly one Project document, found {len(projects)}"))
    errors.extend(cross_check(specs))
    if errors:
        raise SpecErrors(sorted(set(errors)))
    return specs


def _environment(root: Path, raw: list[tuple[Path, str]], env: str | None, errors: list[SpecError]) -> tuple[dict, str]:
    """Find the Project document (never templated) to learn the environments and their values."""
    for path, text in raw:
        if not PROJECT_KIND.search(text):
            continue
        rel = path.relative_to(root).as_posix()
        docs = list(_documents(rel, text, None, []))
        for doc, source in docs:
            if isinstance(doc, Project):
                name = env or doc.spec.default_environment
                if name not in doc.spec.environments:
                    known = ", ".join(sorted(doc.spec.environments))
                    errors.append(source.error(("spec", "environments"), f"unknown environment {name!r} (known: {known})"))
                    return {}, name
                chosen = doc.spec.environments[name]
                return {"env": {"name": name, "backend": chosen.backend}, "values": chosen.values}, name
    return {}, env or "local"


_jinja = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _documents(
    rel: str, text: str, context: dict | None, errors: list[SpecError], broken: set[str] | None = None
) -> Iterator[tuple[Document, Source]]:
    rendered, line_map = text, list(range(1, text.count("\n") + 2))
    if context is not None and ("{{" in text or "{%" in text):
        try:
            rendered = _jinja.from_string(text).render(**context)
        except TemplateError as exc:
            errors.append(SpecError(rel, getattr(exc, "lineno", None) or 1, 1, "", f"template: {exc.message}"))
            return
        line_map = _line_map(text, rendered)
    try:
        parsed = [_construct(node) for node in yaml.compose_all(rendered, Loader=_Loader)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = line_map[min(mark.line, len(line_map) - 1)] if mark else 1
        errors.append(SpecError(rel, line, (mark.column + 1) if mark else 1, "", _yaml_message(exc, rendered)))
        return
    for value, positions in parsed:
        if value is None:
            continue
        source = Source(rel, positions, line_map)
        doc = _validate(value, source, errors)
        if doc is not None:
            yield doc, source
        elif broken is not None and isinstance(value, dict) and isinstance(value.get("metadata"), dict):
            broken.add(f"{value.get('kind')}/{value['metadata'].get('name')}")


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster
_scalars = SafeConstructor()


def _construct(root: yaml.Node) -> tuple[Any, dict[Path_, tuple[int, int, int, int]]]:
    """Build plain Python from a composed node, recording where every path starts.

    Done by hand rather than with yaml.load so that duplicate keys are errors
    (YAML says they are; PyYAML silently keeps the last) and positions survive.
    """
    positions: dict[Path_, tuple[int, int, int, int]] = {}
    start = root.start_mark
    positions[()] = (start.line, start.column, start.line, start.column)

    def build(node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = build(key_node, path)
                if isinstance(key, (dict, list)):
                    raise ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark)
                if key in out:
                    raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                k, v = key_node.start_mark, value_node.start_mark
                positions[(*path, key)] = (k.line, k.column, v.line, v.column)
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                m = item.start_mark
                positions[(*path, i)] = (m.line, m.column, m.line, m.column)
                items.append(build(item, (*path, i)))
            return items
        return _scalars.construct_object(node)

    return build(root, ()), positions


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = exc.problem or "invalid YAML"
    mark = exc.problem_mark
    lines = text.splitlines()
    if mark and mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        return "YAML: tab character; indent with spaces"
    return f"YAML: {problem}" + (f" ({exc.context})" if exc.context else "")


def _validate(node: Any, source: Source, errors: list[SpecError]) -> Document | None:
    if not isinstance(node, dict):
        errors.append(source.error((), "a spec document must be a mapping with apiVersion, kind, metadata, spec"))
        return None
    kind = node.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        errors.append(source.error(("kind",), f"unknown kind {kind!r}; expected one of {', '.join(sorted(KINDS))}"))
        return None
    if node.get("apiVersion") != API_VERSION:
        errors.append(source.error(("apiVersion",), f"expected apiVersion: {API_VERSION}"))
        return None
    try:
        return model.model_validate(node)
    except ValidationError as exc:
        for err in exc.errors():
            at_value = err["type"] not in ("extra_forbidden", "missing")
            errors.append(source.error(_document_path(node, err["loc"]), _pydantic_message(err), at_value))
        return None


def _document_path(node: Any, loc: tuple) -> Path_:
    """pydantic's error location as a path in the document.

    Tagged unions add the tag (e.g. `canary`) to the location; it is not a key
    in the YAML, so it is dropped when the next part is.
    """
    path: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part not in node and i + 1 < len(loc) and loc[i + 1] in node:
            continue
        path.append(part)
        node = node.get(part) if isinstance(node, dict) else node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
    return tuple(path)


def _pydantic_message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "field required"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] not in ("value_error", "assertion_error") and "input" in err and not isinstance(err["input"], (dict, list)):
        message += f" (got {err['input']!r})"
    return message


def _line_map(source: str, rendered: str) -> list[int]:
    """Map each rendered line back to the source line it came from.

    Jinja blocks remove lines, so rendered line numbers drift; matching the two
    texts line by line recovers the source position of every surviving line.
    """
    src, out = source.splitlines(), rendered.splitlines()
    mapping = [1] * (len(out) + 1)
    matcher = difflib.SequenceMatcher(a=src, b=out, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for offset, j in enumerate(range(j1, j2)):
            mapping[j] = min(i1 + offset, max(i2 - 1, i1)) + 1 if tag != "insert" else i1 + 1
    mapping[len(out)] = len(src) or 1
    return mapping
