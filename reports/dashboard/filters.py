"""The dashboard's filters (pipeline, team, owner, period), held in the URL query string."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from accounts import policy
from accounts.models import Team, User
from stages.models import Pipeline

if TYPE_CHECKING:
    from deals.models import DealQuerySet

# A custom period spans up to ten years (a team's imported history often spans several);
# the cumulative-flow chart samples long periods (see `panels.Dashboard.flow`).
MAX_CUSTOM_DAYS = 3653
DEFAULT_PERIOD = "last90"


@dataclass(frozen=True)
class Period:
    """Whole local days `first_day`..`last_day`, i.e. the half-open range [start, end)."""

    first_day: date
    last_day: date
    label: str

    @property
    def start(self) -> datetime:
        return _midnight(self.first_day)

    @property
    def end(self) -> datetime:
        return _midnight(self.last_day + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def __str__(self) -> str:
        return f"{self.label}: {_day_label(self.first_day)} to {_day_label(self.last_day)}"


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def periods_for(
    kind: str, today: date, first: date | None, last: date | None
) -> tuple[Period, Period]:
    """The chosen period and the one before it, of the same kind and length."""
    if kind == "month":
        start = _month_start(today)
        following = _month_start(today, -1)
        before = _month_start(today, 1)
        return (
            Period(start, following - timedelta(days=1), "This month"),
            Period(before, start - timedelta(days=1), "Previous month"),
        )
    if kind == "quarter":
        start = _month_start(today, (today.month - 1) % 3)
        following = _month_start(start, -3)
        before = _month_start(start, 3)
        return (
            Period(start, following - timedelta(days=1), "This quarter"),
            Period(before, start - timedelta(days=1), "Previous quarter"),
        )
    if kind == "custom" and first is not None and last is not None:
        current = Period(first, last, "Custom")
    else:
        current = Period(today - timedelta(days=89), today, "Last 90 days")
    length = timedelta(days=current.days)
    previous = Period(
        current.first_day - length, current.first_day - timedelta(days=1), "Previous period"
    )
    return current, previous


def team_choices(user: User) -> QuerySet[Team]:
    """Teams whose numbers `user` may look at (the policy decides)."""
    return policy.report_teams(user).order_by("name", "pk")


def owner_choices(user: User) -> QuerySet[User]:
    """Owners `user` may filter by. Only narrows the menu: data still goes through the policy."""
    return policy.report_owners(user).order_by("first_name", "last_name", "username", "pk")


class PipelineChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.name


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.display_name


class DashboardFilterForm(forms.Form):
    # No blank choice: an empty value means the first pipeline, which the select shows.
    pipeline = PipelineChoiceField(
        queryset=Pipeline.objects.none(), required=False, empty_label=None
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, empty_label="All my teams"
    )
    owner = OwnerChoiceField(queryset=User.objects.none(), required=False, empty_label="Everyone")
    period = forms.ChoiceField(
        choices=[
            ("month", "This month"),
            ("quarter", "This quarter"),
            ("last90", "Last 90 days"),
            ("custom", "Custom"),
        ],
        required=False,
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data: Any, *, user: User) -> None:
        super().__init__(data)
        self.user = user
        self.fields["pipeline"].queryset = Pipeline.objects.filter(is_archived=False)
        self.fields["team"].queryset = team_choices(user)
        self.fields["owner"].queryset = owner_choices(user)
        if not policy.may_choose_whose_numbers(user):
            # A rep's dashboard is their own numbers: nothing to choose.
            del self.fields["team"]
            del self.fields["owner"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("period") == "custom":
            first, last = data.get("date_from"), data.get("date_to")
            if first is None or last is None:
                raise forms.ValidationError(
                    "Pick the first and the last day of the custom period."
                )
            if first > last:
                raise forms.ValidationError("The start date must not be after the end date.")
            if (last - first).days + 1 > MAX_CUSTOM_DAYS:
                raise forms.ValidationError("A custom period can span at most ten years.")
        return data

    def scope(self, *, now: datetime) -> DashboardScope | None:
        """The validated filters as a scope, or None when no pipeline exists yet."""
        data = self.cleaned_data
        pipeline = data.get("pipeline") or self.fields["pipeline"].queryset.first()
        if pipeline is None:
            return None
        period, previous = periods_for(
            data.get("period") or DEFAULT_PERIOD,
            timezone.localdate(now),
            data.get("date_from"),
            data.get("date_to"),
        )
        return DashboardScope(
            user=self.user,
            pipeline=pipeline,
            team=data.get("team"),
            owner=data.get("owner"),
            period=period,
            previous=previous,
            period_kind=data.get("period") or DEFAULT_PERIOD,
            now=now,
        )


@dataclass(frozen=True)
class DashboardScope:
    """Who is looking, at what: every panel query takes one of these."""

    user: User
    pipeline: Pipeline
    team: Team | None
    owner: User | None
    period: Period
    previous: Period
    period_kind: str
    now: datetime

    @property
    def today(self) -> date:
        return timezone.localdate(self.now)

    def deals(self) -> DealQuerySet:
        """Deals whose numbers this dashboard counts, in any pipeline.

        Always `visible_to`; a rep's dashboard is their own numbers only (DESIGN: "own
        numbers"), narrower than what they may see on the board.
        """
        deals = policy.dashboard_deals(self.user)
        if self.team is not None:
            deals = deals.filter(owner__team=self.team)
        if self.owner is not None:
            deals = deals.filter(owner=self.owner)
        return deals

    def query_string(self) -> str:
        """The filters as a query string, for CSV links and the board link."""
        params: dict[str, Any] = {"pipeline": self.pipeline.pk, "period": self.period_kind}
        if self.team is not None:
            params["team"] = self.team.pk
        if self.owner is not None:
            params["owner"] = self.owner.pk
        if self.period_kind == "custom":
            params["date_from"] = self.period.first_day.isoformat()
            params["date_to"] = self.period.last_day.isoformat()
        return urlencode(params)


def filter_form(params: Any, *, user: User) -> DashboardFilterForm:
    """A bound form whatever the query string holds, so a bare URL shows the defaults."""
    data = {"period": DEFAULT_PERIOD}
    data.update({key: params.get(key) for key in params})
    return DashboardFilterForm(data, user=user)
