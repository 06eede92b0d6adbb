"""Ids and offsets read from query strings, by one strict parser.

`str.isdigit()` and `int()` are both too lenient for input: "²" passes isdigit() but
int() refuses it (a 500 where the two were combined); int() takes " 7", "+7", "1_000"
and other scripts' digits; and a number past a 64-bit key overflows the database. Here a
number is ASCII digits only, at most 2**63 - 1; anything else is BadInput (400, with a
message naming the parameter).
"""

from __future__ import annotations

from django.http import QueryDict

from common.errors import BadInput

MAX_KEY = 2**63 - 1


class MalformedNumber(BadInput):
    """A query-string id or offset that is not a whole number a key can hold."""

    def __init__(self, name: str) -> None:
        super().__init__(f"“{name}” must be a whole number.")


def parse_number(value: str | None, *, name: str) -> int | None:
    """`value` as a non-negative int; None when absent or empty; MalformedNumber otherwise."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_KEY)):
        raise MalformedNumber(name)
    number = int(value)
    if number > MAX_KEY:
        raise MalformedNumber(name)
    return number


def query_number(params: QueryDict, name: str) -> int | None:
    """The query string's `name` as an id or offset (see parse_number)."""
    return parse_number(params.get(name), name=name)
