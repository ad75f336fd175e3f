"""Counting in words: one noun for one, its plural for any other number."""

from __future__ import annotations

import pytest

from scheduler.common.wording import counted, plural


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 slots"), (1, "1 slot"), (2, "2 slots"), (21, "21 slots")]
)
def test_counted_says_the_number_and_the_noun_that_goes_with_it(count: int, expected: str) -> None:
    assert counted(count, "slot") == expected


def test_plural_is_the_noun_alone() -> None:
    assert (plural(1, "job"), plural(3, "job")) == ("job", "jobs")
