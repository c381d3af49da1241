"""Whole-product runs of minutes each: `make acceptance` (and CI after `make test`) runs them."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/acceptance/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.acceptance)
