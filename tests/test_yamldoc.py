"""What JSON cannot carry is found wherever it is, and nothing is found in what it can."""

from __future__ import annotations

import datetime
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scheduler.common.yamldoc import non_json_values

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats()
# What YAML can express and JSON cannot: dates, binary, NaN and infinities, non-string keys.
YAML_ONLY = st.dates() | st.binary(max_size=3) | st.sampled_from([math.nan, math.inf, -math.inf])


def values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4)
        ),
        max_leaves=20,
    )


def carried(value: Any) -> bool:
    """Whether JSON carries `value`, written plainly as the definition says."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and carried(v) for k, v in value.items())
    if isinstance(value, list):
        return all(carried(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


@given(values(JSON_SCALARS | YAML_ONLY))
def test_what_json_cannot_carry_is_found_and_nothing_else(value: Any) -> None:
    found = list(non_json_values(value))
    assert (found == []) == carried(value)


def test_the_path_names_where_the_value_is() -> None:
    day = datetime.date(2026, 12, 7)
    assert list(non_json_values({"a": [1, {"b": day}]})) == [(("a", 1, "b"), day)]
    assert list(non_json_values({"a": {3: "x"}})) == [(("a",), 3)]
