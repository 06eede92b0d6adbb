"""Reading values as exports write them: dates in three orders, amounts with separators."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from imports.parsing import (
    DMY,
    MDY,
    DateOrderEvidence,
    ParseError,
    parse_amount,
    parse_bool,
    parse_date,
    parse_int,
)


@pytest.mark.parametrize(
    "text",
    [
        "2017-03-01",
        "2017-03-01T10:30:00Z",
        "2017-03-01 10:30",
        "2017/03/01",
        "1 Mar 2017",
        "Mar 1, 2017",
        "01-Mar-2017",
    ],
)
def test_iso_and_named_month_dates_read_the_same_in_any_order(text):
    assert parse_date(text, DMY) == parse_date(text, MDY) == date(2017, 3, 1)


def test_numeric_dates_follow_the_chosen_order():
    assert parse_date("03/04/2017", DMY) == date(2017, 4, 3)
    assert parse_date("03/04/2017", MDY) == date(2017, 3, 4)


def test_dotted_european_dates_and_two_digit_years_are_read():
    assert parse_date("20.10.16", DMY) == date(2016, 10, 20)


def test_a_date_that_only_fits_the_other_order_is_an_error_not_a_swap():
    with pytest.raises(ParseError, match="does not fit the date order month/day/year"):
        parse_date("20/10/2016", MDY)


@pytest.mark.parametrize("text", ["2017-13-45", "31/02/2017", "yesterday", "2017"])
def test_impossible_dates_are_errors(text):
    with pytest.raises(ParseError):
        parse_date(text, DMY)


def test_blank_date_is_none():
    assert parse_date("  ", DMY) is None


def test_evidence_settles_day_month_order():
    evidence = DateOrderEvidence()
    for text in ["03/04/2017", "20/10/2016", "2017-01-01"]:
        evidence.observe(text)

    assert evidence.verdict == DMY


def test_evidence_reports_dates_that_could_be_either_as_ambiguous():
    evidence = DateOrderEvidence()
    evidence.observe("03/04/2017")

    assert (evidence.verdict, evidence.example) == ("ambiguous", "03/04/2017")


def test_evidence_reports_a_file_mixing_both_orders_as_conflict():
    evidence = DateOrderEvidence()
    for text in ["20/10/2016", "10/20/2016"]:
        evidence.observe(text)

    assert evidence.verdict == "conflict"


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("1054", Decimal("1054.00"), ""),
        ("1,054", Decimal("1054.00"), ""),
        ("1,234,567.89", Decimal("1234567.89"), ""),
        ("1.234.567,89", Decimal("1234567.89"), ""),
        ("1 234,50", Decimal("1234.50"), ""),
        ("1'234.50", Decimal("1234.50"), ""),
        ("12,5", Decimal("12.50"), ""),
        ("$1,200.50", Decimal("1200.50"), "USD"),
        ("1.200,50 €", Decimal("1200.50"), "EUR"),
        ("£99", Decimal("99.00"), "GBP"),
        ("EUR 1 200", Decimal("1200.00"), "EUR"),
        ("1200 CHF", Decimal("1200.00"), "CHF"),
        ("", None, ""),
    ],
)
def test_amounts_are_read_with_separators_and_currencies(text, amount, currency):
    assert parse_amount(text) == (amount, currency)


@pytest.mark.parametrize("text", ["-5", "(1,200)", "$-5", "12x", "1.2.3,4,5", "abc"])
def test_negative_or_garbled_amounts_are_errors(text):
    with pytest.raises(ParseError):
        parse_amount(text)


def test_amount_above_the_largest_allowed_is_an_error():
    with pytest.raises(ParseError, match="larger than the largest"):
        parse_amount("1000000000000")


def test_whole_numbers_accept_thousands_separators():
    assert parse_int("2,822") == 2822
    with pytest.raises(ParseError):
        parse_int("12.5")


@pytest.mark.parametrize(
    ("text", "value"),
    [("Yes", True), ("COMPLETED", True), ("0", False), ("NOT_STARTED", False), ("", False)],
)
def test_done_flags_read_common_words(text, value):
    assert parse_bool(text) is value
