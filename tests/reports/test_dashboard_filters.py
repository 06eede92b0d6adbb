"""Dashboard periods and filters: what each choice covers, and what is refused."""

from __future__ import annotations

from datetime import date

import pytest
from django.http import QueryDict
from django.utils import timezone

from reports.dashboard.filters import filter_form, periods_for


def days(period):
    return (period.first_day, period.last_day)


def test_this_month_is_compared_with_the_whole_previous_month():
    current, previous = periods_for("month", date(2025, 3, 14), None, None)
    assert days(current) == (date(2025, 3, 1), date(2025, 3, 31))
    assert days(previous) == (date(2025, 2, 1), date(2025, 2, 28))


def test_this_month_in_january_is_compared_with_december():
    current, previous = periods_for("month", date(2025, 1, 5), None, None)
    assert days(current) == (date(2025, 1, 1), date(2025, 1, 31))
    assert days(previous) == (date(2024, 12, 1), date(2024, 12, 31))


def test_this_quarter_is_compared_with_the_previous_quarter():
    current, previous = periods_for("quarter", date(2025, 5, 15), None, None)
    assert days(current) == (date(2025, 4, 1), date(2025, 6, 30))
    assert days(previous) == (date(2025, 1, 1), date(2025, 3, 31))


def test_first_quarter_is_compared_with_last_years_fourth():
    _current, previous = periods_for("quarter", date(2025, 2, 1), None, None)
    assert days(previous) == (date(2024, 10, 1), date(2024, 12, 31))


def test_last_90_days_ends_today_and_follows_the_90_days_before():
    current, previous = periods_for("last90", date(2025, 3, 31), None, None)
    assert days(current) == (date(2025, 1, 1), date(2025, 3, 31))
    assert current.days == 90
    assert days(previous) == (date(2024, 10, 3), date(2024, 12, 31))


def test_custom_period_is_compared_with_the_same_number_of_days_before():
    _current, previous = periods_for(
        "custom", date(2025, 6, 1), date(2025, 3, 1), date(2025, 3, 31)
    )
    assert days(previous) == (date(2025, 1, 29), date(2025, 2, 28))


def test_period_covers_whole_local_days():
    current, _ = periods_for("month", date(2025, 3, 14), None, None)
    assert current.start == timezone.make_aware(timezone.datetime(2025, 3, 1))
    assert current.end == timezone.make_aware(timezone.datetime(2025, 4, 1))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "custom", "date_from": "2025-03-01"}, "Pick the first and the last day"),
        (
            {"period": "custom", "date_from": "2025-03-02", "date_to": "2025-03-01"},
            "must not be after the end date",
        ),
        (
            {"period": "custom", "date_from": "2015-03-01", "date_to": "2025-03-02"},
            "at most ten years",
        ),
    ],
)
def test_custom_period_is_refused_when_it_cannot_be_charted(manager, params, message):
    form = filter_form(params, user=manager)
    assert not form.is_valid()
    assert message in str(form.errors)


def test_custom_period_of_ten_years_is_accepted(manager):
    """A team's imported history often spans years: ten of them (with leap days) fit."""
    params = {"period": "custom", "date_from": "2015-03-02", "date_to": "2025-03-01"}
    form = filter_form(params, user=manager)
    assert form.is_valid(), form.errors


def test_filters_default_to_the_first_pipeline_and_the_last_90_days(manager, pipeline):
    form = filter_form(QueryDict(), user=manager)
    assert form.is_valid()
    scope = form.scope(now=timezone.now())
    assert scope.pipeline == pipeline
    assert scope.period.days == 90
    assert scope.team is None and scope.owner is None


def test_query_string_round_trips_the_filters(manager, team, rep, pipeline):
    params = {
        "pipeline": str(pipeline.pk),
        "team": str(team.pk),
        "owner": str(rep.pk),
        "period": "custom",
        "date_from": "2025-03-01",
        "date_to": "2025-03-31",
    }
    form = filter_form(params, user=manager)
    assert form.is_valid()
    scope = form.scope(now=timezone.now())
    again = filter_form(QueryDict(scope.query_string()), user=manager)
    assert again.is_valid()
    assert again.scope(now=timezone.now()).query_string() == scope.query_string()


def test_a_rep_has_no_team_or_owner_filter(rep):
    form = filter_form(QueryDict(), user=rep)
    assert set(form.fields) == {"pipeline", "period", "date_from", "date_to"}


def test_an_archived_pipeline_is_not_offered(manager, pipeline):
    pipeline.is_archived = True
    pipeline.save()
    form = filter_form({"pipeline": str(pipeline.pk)}, user=manager)
    assert not form.is_valid()
