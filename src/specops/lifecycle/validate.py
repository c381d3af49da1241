"""Stage `validate`: check the data file against its Dataset spec with Great Expectations.

The suite is derived from the spec (column set, types, nulls, ranges, allowed
values, uniqueness) plus the spec's extra `expectations`. The report is
always written; a failure stops the pipeline with a message a person can act
on: which column, which expectation, which values, how many rows.
"""
from __future__ import annotations

import difflib
import math
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig
from pydantic import ValidationError

from specops.errors import SpecopsError, StageFailed
from specops.lifecycle.context import StageContext, write_json
from specops.data import load_dataset
from specops.spec.kinds import Column, Dataset

SHOWN_VALUES = 5
INT_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "Int8", "Int16", "Int32", "Int64"]
FLOAT_TYPES = ["float16", "float32", "float64", "Float32", "Float64"]
TYPE_LISTS = {
    "int": INT_TYPES,
    # A float column whose values happen to be whole numbers is read as integers.
    "float": FLOAT_TYPES + INT_TYPES,
    "str": ["str"],
    "bool": ["bool", "boolean"],
}
HIDDEN_KWARGS = {"column", "batch_id", "result_format"}


def run(ctx: StageContext) -> None:
    frame = load_dataset(ctx.root, ctx.dataset.spec)
    results = validate_frame(frame, ctx.dataset)
    failures = [r for r in results if not r["success"]]
    write_json(ctx.paths.validation, {
        "dataset": ctx.dataset.name,
        "path": ctx.dataset.spec.path,
        "rows": len(frame),
        "success": not failures,
        "expectations": results,
    })
    if failures:
        raise StageFailed(failure_report(ctx.dataset, failures, len(results)))
    print(f"validated {ctx.dataset.spec.path}: {len(results)} expectations passed on {len(frame)} rows")


def validate_frame(frame: pd.DataFrame, dataset: Dataset) -> list[dict[str, Any]]:
    """Run the dataset's suite on `frame`; one plain dict per expectation."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(dataset.name)
        .add_dataframe_asset(name="frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": _gx_compatible(frame)})
    )
    suite = gx.ExpectationSuite(name=dataset.name, expectations=build_expectations(dataset, frame.columns))
    outcome = batch.validate(suite, result_format="SUMMARY")
    return [_summarise(result) for result in outcome.results]


def _gx_compatible(frame: pd.DataFrame) -> pd.DataFrame:
    # GE 1.x does not recognise pandas 3's "str" dtype in type checks; as objects it checks each value's type.
    text = frame.select_dtypes(include=["string", "str"]).columns
    return frame.astype({name: object for name in text})


def build_expectations(dataset: Dataset, present: pd.Index) -> list[gxe.Expectation]:
    columns = dataset.spec.columns
    expectations: list[gxe.Expectation] = [gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=True)]
    # A missing column is reported once, by the column-set check, rather than by each of its checks erroring.
    for name in (n for n in columns if n in present):
        expectations += column_expectations(name, columns[name])
    expectations += [extra_expectation(dataset, item) for item in dataset.spec.expectations]
    return expectations


def column_expectations(name: str, column: Column) -> list[gxe.Expectation]:
    types = TYPE_LISTS[column.type] + (FLOAT_TYPES if column.type == "int" and column.nullable else [])
    expectations: list[gxe.Expectation] = [gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=types)]
    if not column.nullable:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
    if column.min is not None or column.max is not None:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=column.min, max_value=column.max))
    if column.allowed is not None:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=column.allowed))
    if column.unique:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=name))
    if column.role == "date" and column.type == "str":
        expectations.append(gxe.ExpectColumnValuesToBeDateutilParseable(column=name))
    return expectations


def extra_expectation(dataset: Dataset, item: dict[str, dict[str, Any]]) -> gxe.Expectation:
    """{expect_column_mean_to_be_between: {...}} -> gx.expectations.ExpectColumnMeanToBeBetween(...)."""
    snake, kwargs = next(iter(item.items()))
    expectation_class = expectation_class_named(snake)
    try:
        return expectation_class(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        raise SpecopsError(f"dataset {dataset.name}: expectation {snake}: {problems}") from None


def expectation_class_named(snake: str) -> type[gxe.Expectation]:
    camel = "".join(part.capitalize() for part in snake.split("_"))
    found = getattr(gxe, camel, None)
    if isinstance(found, type) and issubclass(found, gxe.Expectation):
        return found
    known = [_snake(n) for n in dir(gxe) if n.startswith("Expect")]
    close = difflib.get_close_matches(snake, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise SpecopsError(f"unknown Great Expectations expectation {snake!r}{hint}")


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel).lstrip("_")


def _summarise(result) -> dict[str, Any]:
    config, details = result.expectation_config, dict(result.result)
    summary = {
        "expectation": config.type,
        "column": config.kwargs.get("column"),
        "arguments": {k: v for k, v in config.kwargs.items() if k not in HIDDEN_KWARGS},
        "success": bool(result.success),
    }
    if "observed_value" in details:
        summary["observed"] = _jsonable(details["observed_value"])
    if "unexpected_count" in details:
        summary["unexpected_count"] = details["unexpected_count"]
        summary["element_count"] = details["element_count"]
        summary["unexpected_values"] = [_jsonable(c["value"]) for c in details.get("partial_unexpected_counts", [])]
    error = _exception_message(result.exception_info or {})
    if error:
        summary["error"] = error
    return summary


def _exception_message(info: dict) -> str | None:
    # GE reports either one exception dict or one per metric it tried to compute.
    infos = [info] if "raised_exception" in info else [i for i in info.values() if isinstance(i, dict)]
    messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    return "; ".join(m for m in messages if m) or None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def failure_report(dataset: Dataset, failures: list[dict[str, Any]], total: int) -> str:
    lines = [f"data validation failed for {dataset.spec.path} (dataset {dataset.name}): {len(failures)} of {total} expectations failed"]
    lines += [f"  - {_describe_failure(f)}" for f in failures]
    return "\n".join(lines)


def _describe_failure(failure: dict[str, Any]) -> str:
    where = f"column {failure['column']}" if failure["column"] else "table"
    arguments = ", ".join(f"{k}={v!r}" for k, v in failure["arguments"].items())
    head = f"{where}: {failure['expectation']}({arguments})"
    if "error" in failure:
        return f"{head}: could not be evaluated: {failure['error']}"
    if failure.get("unexpected_count"):
        values = failure["unexpected_values"][:SHOWN_VALUES]
        more = ", ..." if len(failure["unexpected_values"]) > SHOWN_VALUES else ""
        shown = ", ".join(repr(v) for v in values) + more
        return f"{head}: {failure['unexpected_count']} of {failure['element_count']} rows unexpected, e.g. {shown}"
    return f"{head}: observed {failure.get('observed')!r}"
