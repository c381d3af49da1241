"""Request bodies: what a deployment accepts, how it is parsed, and its OpenAPI description.

A deployment takes *raw* rows, the dataset columns its feature set reads, and
turns them into model inputs with the same `compute_features` as training;
the model signature describes those features and the predictions. Accepted
bodies (the Azure ML formats for MLflow models, plus MLflow's own):

    {"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}   split (Azure ML)
    {"input_data": [{"col": value, ...}, ...]}                                records (Azure ML)
    {"data": [{"col": value, ...}, ...]}                                       records (Azure ML custom scripts)
    {"dataframe_split": {...}} / {"dataframe_records": [...]}                  MLflow scoring server
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from specops.spec.kinds import Column, DatasetSpec, FeatureSetSpec

_JSON_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}


OutOfRange = Literal["reject", "flag"]


class BadRequest(Exception):
    """A 400: `field` is the JSON path of what is wrong."""

    status = 400

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


class TooManyRows(BadRequest):
    """A 413: more rows than the endpoint takes in one request."""

    status = 413


class Unprocessable(BadRequest):
    """A 422: well-formed, but row `row` (0-based, within the request) cannot be scored: a value outside the
    Dataset's declared domain (`column` names it), or one the model failed on."""

    status = 422

    def __init__(self, field: str, message: str, row: int, column: str | None = None):
        super().__init__(field, message)
        self.row = row
        self.column = column

    def body(self) -> dict[str, Any]:
        return {**super().body(), "row": self.row, **({"column": self.column} if self.column else {})}


@dataclass(frozen=True)
class InputSchema:
    columns: tuple[str, ...]
    types: tuple[Column, ...]
    sensitive: tuple[str, ...] = ()  # logged when a caller sends them (fairness monitors), never given to the model
    sensitive_types: tuple[Column, ...] = ()  # their declarations: checked at the door like the model's columns
    out_of_range: OutOfRange = "reject"  # a value outside the declared min/max/allowed: a 422, or scored and flagged
    max_rows: int | None = None  # more rows in one request: a 413

    @classmethod
    def of(cls, feature_set: FeatureSetSpec, dataset: DatasetSpec, out_of_range: OutOfRange = "reject",
           max_rows: int | None = None) -> InputSchema:
        names = tuple(dict.fromkeys(src for f in feature_set.features for src in f.sources))
        sensitive = tuple(c for c in dataset.sensitive if c in dataset.columns)
        return cls(names, tuple(dataset.columns[n] for n in names), sensitive,
                   tuple(dataset.columns[c] for c in sensitive), out_of_range, max_rows)

    def sensitive_values(self, body: bytes, count: int) -> list[dict[str, Any]]:
        """Per row of a body `parse` accepted, the sensitive attributes the caller sent (empty when none).

        Parsed again only for a logged request of a data set with sensitive columns: the hot path stays one parse.
        """
        if not self.sensitive:
            return [{} for _ in range(count)]
        document = loads_strict(body)
        for key, value in document.items():
            if key in ("input_data", "dataframe_split") and isinstance(value, dict):
                position = {name: i for i, name in enumerate(value["columns"])}
                return [{c: row[position[c]] for c in self.sensitive if c in position} for row in value["data"]]
            if key in ("input_data", "data", "dataframe_records"):
                records = [value] if isinstance(value, dict) else value
                return [{c: record[c] for c in self.sensitive if c in record} for record in records]
        return [{} for _ in range(count)]

    def parse(self, body: bytes) -> list[list[Any]]:
        """Rows as lists in `columns` order, every value checked; raises BadRequest."""
        try:
            document = loads_strict(body)
        except DuplicateKey as exc:
            raise BadRequest("body", f"key {exc.key!r} appears more than once in one object "
                                     f"(which value counts would be a guess)") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest("body", f"not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise BadRequest("body", "expected a JSON object with input_data, data, dataframe_split or dataframe_records")
        for key, value in document.items():
            if key in ("input_data", "dataframe_split") and isinstance(value, dict):
                rows = self._split(key, value)
            elif key in ("input_data", "data", "dataframe_records"):
                rows = self._records(key, value)
            else:
                continue
            if not rows:
                raise BadRequest(key, "no rows")
            return rows
        raise BadRequest("body", "expected one of input_data, data, dataframe_split or dataframe_records")

    def _split(self, key: str, value: dict) -> list[list[Any]]:
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest(f"{key}.columns", "expected a list of column names")
        if not isinstance(data, list):
            raise BadRequest(f"{key}.data", "expected a list of rows")
        self._check_count(f"{key}.data", len(data))
        position = {name: i for i, name in enumerate(columns)}
        if len(position) < len(columns):
            twice = next(c for i, c in enumerate(columns) if c in columns[:i])
            raise BadRequest(f"{key}.columns", f"column {twice!r} appears more than once")
        missing = [c for c in self.columns if c not in position]
        if missing:
            raise BadRequest(f"{key}.columns", f"missing column(s) {', '.join(missing)}")
        picks = [position[c] for c in self.columns]
        rows = []
        for r, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadRequest(f"{key}.data[{r}]", f"expected a list of {len(columns)} values, like columns")
            values = [row[i] for i in picks]
            self._check(values, r, f"{key}.data[{r}]", lambda c: f"[{position[c]}] ({c})")
            self._check_sensitive({c: row[position[c]] for c in self.sensitive if c in position}, r,
                                  f"{key}.data[{r}]", lambda c: f"[{position[c]}] ({c})")
            rows.append(values)
        return rows

    def _records(self, key: str, value: Any) -> list[list[Any]]:
        if isinstance(value, dict):  # a single record
            value = [value]
        if not isinstance(value, list):
            raise BadRequest(key, "expected a list of records ({column: value})")
        self._check_count(key, len(value))
        rows = []
        for r, record in enumerate(value):
            if not isinstance(record, dict):
                raise BadRequest(f"{key}[{r}]", "expected a record ({column: value})")
            missing = [c for c in self.columns if c not in record]
            if missing:
                raise BadRequest(f"{key}[{r}]", f"missing column(s) {', '.join(missing)}")
            values = [record[c] for c in self.columns]
            self._check(values, r, f"{key}[{r}]", lambda c: f".{c}")
            if self.sensitive:
                self._check_sensitive({c: record[c] for c in self.sensitive if c in record}, r, f"{key}[{r}]",
                                      lambda c: f".{c}")
            rows.append(values)
        return rows

    def _check_count(self, field: str, rows: int) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise TooManyRows(field, f"{rows} rows; at most {self.max_rows} per request (server.max_rows_per_request): "
                                     f"split it, or use a batch endpoint")

    def _check(self, values: list[Any], index: int, row: str, column: Callable[[str], str]) -> None:
        """For a row that breaks the contract, an error at `row` + `column(name)` (where the request holds the value):
        a BadRequest for a wrong type, Unprocessable for a value outside the declared domain (unless flagged)."""
        for name, spec, value in zip(self.columns, self.types, values):
            problem = _type_problem(spec, value)
            if problem:
                raise BadRequest(row + column(name), problem)
            problem = _domain_problem(spec, value) if self.out_of_range == "reject" else None
            if problem:
                raise Unprocessable(row + column(name), f"row {index}, column {name}: {problem}", index, name)

    def _check_sensitive(self, sent: dict[str, Any], index: int, row: str, column: Callable[[str], str]) -> None:
        """The sensitive attributes a caller sent go to the log only (the fairness monitors group by them): a wrong
        type is a 400 and a value outside the declared `allowed` a 422, whatever out_of_range says, since a flag
        would still let a nested object or a 100 KB string into every fairness report."""
        for name, spec in zip(self.sensitive, self.sensitive_types):
            if name not in sent:
                continue
            problem = _type_problem(spec, sent[name])
            if problem:
                raise BadRequest(row + column(name), problem)
            problem = _domain_problem(spec, sent[name])
            if problem:
                raise Unprocessable(row + column(name), f"row {index}, column {name}: {problem}", index, name)

    def row_problem(self, values: list[Any]) -> tuple[str, str] | None:
        """(column, what is wrong) for the first value of a row (in `columns` order) that breaks the contract."""
        for name, column, value in zip(self.columns, self.types, values):
            problem = _type_problem(column, value) or _domain_problem(column, value)
            if problem:
                return name, problem
        return None

    def flags(self, values: list[Any]) -> dict[str, str]:
        """Column -> why, for each value outside the declared domain: what a flagged row carries into the log."""
        found = {name: _domain_problem(column, value) for name, column, value in zip(self.columns, self.types, values)}
        return {name: problem for name, problem in found.items() if problem}

    def openapi(self, endpoint: str, deployments: list[str], output: dict[str, Any]) -> dict[str, Any]:
        properties = {name: _property(column) for name, column in zip(self.columns, self.types)}
        record = {"type": "object", "properties": properties, "required": list(self.columns)}
        return {
            "openapi": "3.0.3",
            "info": {"title": f"specops endpoint {endpoint}", "version": "1"},
            "components": {"securitySchemes": {"key": {"type": "http", "scheme": "bearer"}}},
            "security": [{"key": []}],
            "paths": {"/score": {"post": {
                "summary": "Score rows; the deployment is chosen by traffic weight unless azureml-model-deployment names one",
                "parameters": [{"name": "azureml-model-deployment", "in": "header", "required": False,
                                "schema": {"type": "string", "enum": deployments}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["input_data"], "properties": {"input_data": {
                        "type": "object", "required": ["columns", "data"],
                        "properties": {"columns": {"type": "array", "items": {"type": "string", "enum": list(self.columns)}},
                                       "data": {"type": "array", "items": {"type": "array"}}}}}},
                    {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": record}}},
                ]}}}},
                "responses": {
                    "200": {"description": "one prediction per row",
                            "content": {"application/json": {"schema": {"type": "array", "items": output}}}},
                    "400": {"description": "malformed body; the message names the field"},
                    "422": {"description": "a row outside the Dataset's declared domain, or one the model failed on; "
                                           "names the row (and the column)"},
                    "401": {"description": "missing or wrong key"},
                    "404": {"description": "no such deployment"},
                    "413": {"description": "body too large, or more rows than server.max_rows_per_request"},
                },
            }}},
        }


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return document


def loads_strict(body: bytes | str) -> Any:
    """json.loads refusing an object with a key twice (DuplicateKey): Python keeps the last value silently, another
    reader of the same body may keep the first."""
    return json.loads(body, object_pairs_hook=_unique_keys)


def value_problem(column: Column, value: Any) -> tuple[int, str] | None:
    """(400 or 422, why) for a value that breaks its column's declaration: a wrong type, or outside its domain."""
    problem = _type_problem(column, value)
    if problem:
        return 400, problem
    problem = _domain_problem(column, value)
    return (422, problem) if problem else None


MAX_INT = 2**63  # a JSON integer beyond int64 is no number a model takes (and no float holds a 400-digit one)


def _type_problem(column: Column, value: Any) -> str | None:
    if value is None:
        return None if column.nullable else "must not be null"
    if column.type in ("int", "float"):
        # bool is an int subclass in Python, never a number in a contract.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {_short(value)}"
        if isinstance(value, int) and not -MAX_INT <= value < MAX_INT:
            return f"expected a number within 64 bits, got an integer of {len(str(abs(value)))} digits"
        if not math.isfinite(value):
            return f"expected a number, got {value!r}"
        if column.type == "int" and isinstance(value, float) and not value.is_integer():
            return f"expected an integer, got {value!r}"
    elif column.type == "str" and not isinstance(value, str):
        return f"expected a string, got {_short(value)}"
    elif column.type == "bool" and not isinstance(value, bool):
        return f"expected true or false, got {_short(value)}"
    return None


def _domain_problem(column: Column, value: Any) -> str | None:
    """Outside the declared min, max or allowed values (`value` has the column's type, or is None)."""
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)  # min and max bound numbers only
    if number and column.min is not None and value < column.min:
        return f"{value!r} is below the declared min {column.min:g}"
    if number and column.max is not None and value > column.max:
        return f"{value!r} is above the declared max {column.max:g}"
    if column.allowed is not None and value not in column.allowed:
        return f"{_short(value)} is not one of {', '.join(map(str, column.allowed))}"
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _property(column: Column) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _JSON_TYPES[column.type], "nullable": column.nullable}
    if column.allowed is not None:
        schema["enum"] = list(column.allowed)
    if column.description:
        schema["description"] = column.description
    return schema
