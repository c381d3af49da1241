"""Read `specs/**/*.yaml` into validated Spec documents.

Every file is a Jinja2 template (rendered for one environment), then YAML,
then a pydantic model chosen by `kind`. Errors from all three layers, and from
the cross-reference checks, are collected and reported together, each with the
file, line and column in the *source* file the person edited.

Spec files come from pull requests, so any byte sequence must end in a SpecError
or a SpecSet, quickly: files are size-capped, must be UTF-8, and the YAML is
built under caps on values and nesting, with aliases refused.
"""
from __future__ import annotations

import bisect
import codecs
import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError, SafeConstructor

from specops.core.paths import ProjectPaths
from specops.errors import SpecError, SpecErrors, SpecopsError
from specops.spec.kinds import API_VERSION, KINDS, Document, Project

SPEC_DIR = "specs"
# Limits for hostile or broken input; the example's specs are ~1 KB, ~100 values, 6 levels deep.
MAX_BYTES = 256 * 1024  # per file: room for MAX_VALUES, and for long comments
MAX_VALUES = 20_000  # scalars, mappings and sequences (keys too) per file: bounds building, validating, reporting
MAX_DOCUMENT_ERRORS = 100  # schema errors listed per document: more are noise, and slow to report
MAX_TEMPLATE_TAGS = 1_000  # {{ }} and {% %} per file: Jinja compiles each to Python (~0.1 ms a tag)
MAX_DEPTH = 64  # nesting; pydantic and the checks recurse, so far below Python's recursion limit
MATCH_BUDGET = 40_000  # changed source lines x rendered lines for difflib, whose worst case is cubic: 0.2 s
PROJECT_KIND = re.compile(r"^kind:\s*[\"']?Project[\"']?\s*$", re.MULTILINE)
Path_ = tuple[str | int, ...]
D = TypeVar("D", bound=Document)


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
    def paths(self) -> ProjectPaths:
        """Where this project keeps everything (specops.core.paths)."""
        return ProjectPaths(self.root)

    @property
    def project(self) -> Project:
        return next(d for d in self.documents if isinstance(d, Project))

    def of_kind(self, kind: type[D]) -> list[D]:
        return [d for d in self.documents if isinstance(d, kind)]

    def get(self, kind: type[D], name: str) -> D | None:
        found = self.index.get(f"{kind.__name__}/{name}")
        return found if isinstance(found, kind) else None

    def require(self, kind: type[D], name: str) -> D:
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
    root = Path(root).resolve()
    files = spec_files(root)
    if not files:
        raise SpecErrors([SpecError(f"{SPEC_DIR}/", 1, 1, "", "no spec files found (specs/**/*.yaml)")])
    errors: list[SpecError] = []
    contents = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        data = _read(path, rel, errors)
        if data is not None:
            contents[rel] = data
    return _load(root, contents, env, errors)


def load_files(root: Path | str, contents: Mapping[str, bytes], env: str | None = None) -> SpecSet:
    """load_specs for spec files given in memory: path relative to `root` -> the file's bytes.

    `root` is still the project the specs describe (the checks look for its data files).
    """
    if not contents:
        raise SpecErrors([SpecError(f"{SPEC_DIR}/", 1, 1, "", "no spec files found (specs/**/*.yaml)")])
    return _load(Path(root).resolve(), contents, env, [])


def _load(root: Path, contents: Mapping[str, bytes], env: str | None, errors: list[SpecError]) -> SpecSet:
    from specops.spec.checks import cross_check

    raw = [(rel, text) for rel, data in contents.items() if (text := _decode(rel, data, errors)) is not None]
    project_values, env_name = _environment(raw, env, errors)
    specs = SpecSet(root=root, env=env_name)
    for rel, text in raw:
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
        # By key, not SpecError's generated __lt__: a broken file can bring 20,000 errors.
        raise SpecErrors(sorted(set(errors), key=lambda e: (e.file, e.line, e.column, e.path, e.message)))
    return specs


def _read(path: Path, rel: str, errors: list[SpecError]) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(MAX_BYTES + 1)  # enough to tell that a file is too large, without reading all of it
    except OSError as exc:
        errors.append(SpecError(rel, 1, 1, "", f"cannot read the file: {exc.strerror or exc}"))
        return None


def _decode(rel: str, data: bytes, errors: list[SpecError]) -> str | None:
    """The file as text; None, with an error naming the first bad byte, if it is not UTF-8 text."""
    if len(data) > MAX_BYTES:
        errors.append(SpecError(rel, 1, 1, "", f"file larger than {MAX_BYTES // 1024} KiB, the limit for a spec file"))
        return None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # What Windows PowerShell writes by default. Before the NUL test: UTF-16 text is half NUL bytes.
        errors.append(SpecError(rel, 1, 1, "", "not UTF-8 but UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"))
        return None
    if (nul := data.find(b"\0")) >= 0:
        line, column = _byte_position(data, nul)
        errors.append(SpecError(rel, line, column, "", f"a binary file, not YAML text (NUL byte at line {line}, column {column})"))
        return None
    try:
        return data.decode("utf-8-sig")  # a leading byte order mark is allowed, and dropped
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        errors.append(SpecError(rel, line, column, "", f"not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}, column {column})"))
        return None


def _byte_position(data: bytes, index: int) -> tuple[int, int]:
    """1-based line and column of the byte at `index`, the column counted in characters as editors do."""
    start = data.rfind(b"\n", 0, index) + 1
    before = data[start:index].removeprefix(codecs.BOM_UTF8) if start == 0 else data[start:index]
    return data.count(b"\n", 0, index) + 1, len(before.decode("utf-8", "replace")) + 1


def _environment(raw: list[tuple[str, str]], env: str | None, errors: list[SpecError]) -> tuple[dict[str, Any], str]:
    """Find the Project document (never templated) to learn the environments and their values."""
    for rel, text in raw:
        if not PROJECT_KIND.search(text):
            continue
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
# Every load compiles the same few templates again (the controller reloads, commands load repeatedly).
_template = functools.lru_cache(maxsize=64)(_jinja.from_string)


def _documents(
    rel: str, text: str, context: dict[str, Any] | None, errors: list[SpecError], broken: set[str] | None = None
) -> Iterator[tuple[Document, Source]]:
    rendered, line_map = text, list(range(1, text.count("\n") + 2))
    if context is not None and ("{{" in text or "{%" in text):
        templated = _render(rel, text, context, errors)
        if templated is None:
            return
        rendered, line_map = templated, _line_map(text, templated)
    try:
        parsed = _parse(rendered)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = line_map[min(mark.line, len(line_map) - 1)] if mark else 1
        errors.append(SpecError(rel, line, (mark.column + 1) if mark else 1, "", _yaml_message(exc, rendered)))
        return
    except (yaml.reader.ReaderError, UnicodeEncodeError) as exc:
        errors.append(_character_error(rel, rendered, line_map, exc))
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


def _render(rel: str, text: str, context: dict[str, Any], errors: list[SpecError]) -> str | None:
    if (tags := text.count("{{") + text.count("{%")) > MAX_TEMPLATE_TAGS:
        errors.append(SpecError(rel, 1, 1, "", f"template: {tags:,} tags, more than the limit of {MAX_TEMPLATE_TAGS:,}"))
        return None
    try:
        return _template(text).render(**context)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None) or _template_line(exc)  # runtime errors carry no line of their own
        errors.append(SpecError(rel, line, 1, "", f"template: {exc.message or type(exc).__name__}"))
    except Exception as exc:
        errors.append(SpecError(rel, _template_line(exc), 1, "", f"template: {type(exc).__name__}: {exc}"))
    return None


def _template_line(exc: BaseException) -> int:
    """The template line an error was raised at: Jinja puts template lines in the traceback."""
    line, tb = 1, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _character_error(rel: str, rendered: str, line_map: list[int], exc: UnicodeEncodeError | yaml.reader.ReaderError) -> SpecError:
    """A character YAML does not allow (a control character), or that cannot be encoded (a template's lone surrogate)."""
    if isinstance(exc, UnicodeEncodeError):
        character, index = exc.object[exc.start], exc.start
    else:  # libyaml reports a byte offset, PyYAML a character offset: find the character, the first is the one
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        index = max(rendered.find(character), 0)
    line = rendered.count("\n", 0, index)
    column = index - (rendered.rfind("\n", 0, index) + 1) + 1
    return SpecError(rel, line_map[min(line, len(line_map) - 1)], column, "", f"YAML: character {character!r} is not allowed")


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster
_resolver = yaml.resolver.Resolver()
_scalars = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
# Constructors for plain values only: a collection tag on a scalar (`!!set a`) would build a set or a
# half-built generator, and `value` (a bare "=") has none of its own.
_CONSTRUCTORS = {
    **{_TAG + name: SafeConstructor.yaml_constructors[_TAG + name]
       for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")},
    _TAG + "value": SafeConstructor.construct_yaml_str,
}
_COLLECTION_TAGS = {None, "!", _TAG + "map", _TAG + "seq"}
Positions = dict[Path_, tuple[int, int, int, int]]


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being filled, and for a mapping the key waiting for its value."""

    value: dict[Any, Any] | list[Any]
    path: Path_
    key: Any = None
    key_mark: Any = None  # the key's start mark; None while the mapping waits for a key


def _parse(text: str) -> list[tuple[Any, Positions]]:
    """Every YAML document in `text` as plain Python, with where every path starts.

    Built from parser events rather than with yaml.load so that duplicate keys
    are errors (YAML says they are; PyYAML silently keeps the last), positions
    survive, and hostile input stays cheap: aliases are refused where they
    appear (nine nested levels of nine aliases are 387 million values), and
    values and nesting are counted as they arrive, with no recursion.
    """
    documents: list[tuple[Any, Positions]] = []
    stack: list[_Open] = []
    positions: Positions = {}
    root, count = None, 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.ScalarEvent):  # the most common event, so tested first
            value = _scalar(event)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            if event.tag not in _COLLECTION_TAGS:  # !!set, !!omap, !!python/...: would silently become a dict or list
                raise ConstructorError(None, None, f"unsupported tag {_written(event.tag)}", event.start_mark)
            value = {} if isinstance(event, yaml.MappingStartEvent) else []
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        elif isinstance(event, yaml.AliasEvent):
            raise ConstructorError(None, None, f"aliases are not supported (*{event.anchor}); write the value out", event.start_mark)
        elif isinstance(event, yaml.DocumentStartEvent):
            positions, root = {}, None
            continue
        elif isinstance(event, yaml.DocumentEndEvent):
            documents.append((root, positions))
            continue
        else:  # the stream's start and end
            continue
        count += 1
        if count > MAX_VALUES:
            raise ConstructorError(None, None, f"more than {MAX_VALUES:,} values in one file", event.start_mark)
        mark = event.start_mark
        if stack:
            path = _place(stack[-1], value, mark, positions)
        else:
            path, root = (), value
            positions[()] = (mark.line, mark.column, mark.line, mark.column)
        if isinstance(value, (dict, list)):
            stack.append(_Open(value, path))
    return documents


def _place(parent: _Open, value: Any, mark: Any, positions: Positions) -> Path_:
    """Put `value` into the open collection; the path it got (a key gets none of its own)."""
    if isinstance(parent.value, list):
        path = (*parent.path, len(parent.value))
        positions[path] = (mark.line, mark.column) * 2
        parent.value.append(value)
        return path
    if parent.key_mark is None:
        if isinstance(value, (dict, list)):
            raise ConstructorError(None, None, "a mapping key must be a plain value", mark)
        if value in parent.value:
            raise ConstructorError(None, None, f"duplicate key {value!r}", mark)
        parent.key, parent.key_mark = value, mark
        return parent.path
    path = (*parent.path, parent.key)
    positions[path] = (parent.key_mark.line, parent.key_mark.column, mark.line, mark.column)
    parent.value[parent.key] = value
    parent.key, parent.key_mark = None, None
    return path


def _scalar(event: yaml.ScalarEvent) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted or a block: a string, whatever it looks like
            return event.value
        tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _TAG + "str":  # most values: nothing to convert
        return event.value
    if tag == _TAG + "merge":
        raise ConstructorError(None, None, "merge keys (<<) are not supported; write the keys out", event.start_mark)
    construct = _CONSTRUCTORS.get(tag)
    if construct is None:
        raise ConstructorError(None, None, f"unsupported tag {_written(tag)}", event.start_mark)
    try:
        return construct(_scalars, yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style))
    except (ValueError, LookupError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors trust the tag or the resolver's pattern: `!!bool x`, `!!int` with no
        # digits, `2001-13-45` or 5,000 digits fail in a dict lookup, value[0], datetime() or int().
        # A ValueError says which limit.
        detail = f" ({str(exc).split(';')[0]})" if type(exc) is ValueError else ""
        raise ConstructorError(None, None, f"not a valid {tag.removeprefix(_TAG)}: {event.value[:40]!r}{detail}", event.start_mark) from exc


def _written(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


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
        problems = exc.errors()
        for err in problems[:MAX_DOCUMENT_ERRORS]:
            at_value = err["type"] not in ("extra_forbidden", "missing")
            errors.append(source.error(_document_path(node, err["loc"]), _pydantic_message(err), at_value))
        if len(problems) > MAX_DOCUMENT_ERRORS:
            more = len(problems) - MAX_DOCUMENT_ERRORS
            errors.append(source.error((), f"{more:,} more errors in this document (the first {MAX_DOCUMENT_ERRORS} are listed)"))
        return None


def _document_path(node: Any, loc: tuple[str | int, ...]) -> Path_:
    """pydantic's error location as a path in the document.

    Tagged unions add the tag (e.g. `canary`) to the location; it is not a key
    in the YAML, so it is dropped when the next part is.
    """
    path: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part not in node and i + 1 < len(loc) and loc[i + 1] in node:
            continue
        path.append(part)
        node = _child(node, part)
    return tuple(path)


def _child(node: Any, part: str | int) -> Any:
    """The value at `part` in `node`, or None where the document has none."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _pydantic_message(err: ErrorDetails) -> str:
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
    # Lines before the first and after the last difference match one to one: only the lines between go
    # to difflib, whose time grows with the product of their counts (a hostile file has 100,000s).
    shorter = min(len(src), len(out))
    head = next((i for i, (a, b) in enumerate(zip(src, out)) if a != b), shorter)
    tail = next((i for i, (a, b) in enumerate(zip(reversed(src[head:]), reversed(out[head:]))) if a != b), shorter - head)
    middle = _match_lines(src[head : len(src) - tail], out[head : len(out) - tail])
    return [*range(1, head + 1), *(head + m for m in middle), *range(len(src) - tail + 1, len(src) + 1), len(src) or 1]


def _match_lines(src: list[str], out: list[str]) -> list[int]:
    """For each line of `out`, the (1-based) line of `src` it came from."""
    if len(src) * len(out) > MATCH_BUDGET:
        return _follow_lines(src, out)
    mapping = [1] * len(out)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=src, b=out, autojunk=False).get_opcodes():
        for offset, j in enumerate(range(j1, j2)):
            mapping[j] = min(i1 + offset, max(i2 - 1, i1)) + 1 if tag != "insert" else i1 + 1
    return mapping


def _follow_lines(src: list[str], out: list[str]) -> list[int]:
    """_match_lines in O(n log n) for long texts, where difflib could take minutes.

    Jinja keeps text in order: a line maps to the next equal source line, a line
    the template changed to the first source line not yet matched. Blank lines,
    which Jinja leaves where its tags were, match nothing.
    """
    where: dict[str, list[int]] = {}
    for i, line in enumerate(src):
        where.setdefault(line, []).append(i)
    mapping, next_line = [], 0
    for line in out:
        spots = where.get(line, []) if line.strip() else []
        k = bisect.bisect_left(spots, next_line)
        if k < len(spots):
            next_line = spots[k] + 1
            mapping.append(next_line)
        else:
            mapping.append(min(next_line + 1, len(src)))
    return mapping
