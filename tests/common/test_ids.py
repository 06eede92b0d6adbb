"""The one parser for ids and offsets from query strings."""

from __future__ import annotations

import pytest

from common.ids import MAX_KEY, MalformedNumber, parse_number


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("0", 0), ("42", 42)])
def test_whole_numbers_and_absence_are_read(value, expected):
    assert parse_number(value, name="pipeline") == expected


def test_the_largest_key_is_read():
    assert parse_number(str(MAX_KEY), name="offset") == MAX_KEY


@pytest.mark.parametrize(
    "value", ["²", "٣", "-1", "+1", " 1", "1_000", "1.0", "x", str(MAX_KEY + 1), "9" * 40]
)
def test_anything_else_is_bad_input_naming_the_parameter(value):
    with pytest.raises(MalformedNumber) as refused:
        parse_number(value, name="pipeline")
    assert refused.value.status == 400
    assert "pipeline" in refused.value.message
