"""Activities: attached to deals by the deals' external ids, added once."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from accounts import policy
from deals.activities import refresh_activity_times
from deals.models import (
    Activity,
)
from imports.mapping import Mapping, normalise
from imports.parsing import (
    ParseError,
    parse_bool,
    parse_date,
)
from imports.records import ACTIVITY, Outcome, Recorder, outcome_of
from imports.rows import Problem, noon
from imports.source import Row
from stages.models import ActivityType

if TYPE_CHECKING:
    from accounts.models import User
    from imports.models import ImportJob


# -- activities ----------------------------------------------------------------------------

ACTIVITY_WORDS = {
    **{t.value: t.value for t in ActivityType},
    **{t.label.lower(): t.value for t in ActivityType},
    "phone call": ActivityType.CALL,
    "lunch": ActivityType.MEETING,
    "deadline": ActivityType.TASK,
    "to do": ActivityType.TASK,
    "todo": ActivityType.TASK,
    "e mail": ActivityType.EMAIL,
}


class ActivityWriter:
    """Activities attached to deals by the deals' external ids (deals you may edit).

    An activity already on the deal with the same type, subject and due time is left
    alone, so importing the same file twice adds nothing.
    """

    def __init__(self, job: ImportJob, mapping: Mapping, *, by: User, date_order: str) -> None:
        from imports.rows import OwnerIndex

        self.job = job
        self.mapping = mapping
        self.by = by
        self.date_order = date_order
        self.owners = OwnerIndex(by, mapping.owners)
        self.now = timezone.now()

    def _get(self, row: Row, name: str) -> str:
        header = self.mapping.columns.get(name)
        return row.values.get(header, "").strip() if header else ""

    def _when(self, row: Row, name: str, problems: list[Problem]) -> datetime | None:
        text = self._get(row, name)
        try:
            day = parse_date(text, self.date_order)
        except ParseError as error:
            problems.append(
                Problem(row.line, self.mapping.columns[name], "bad_date", error.message)
            )
            return None
        if day is None:
            return None
        if "T" in text or ":" in text:
            for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
                try:
                    return timezone.make_aware(datetime.strptime(text[:19], fmt))
                except ValueError:
                    continue
        return noon(day)

    def convert(self, row: Row) -> tuple[dict[str, Any], list[Problem]]:
        columns = self.mapping.columns
        problems: list[Problem] = []
        kind = self._get(row, "type")
        values: dict[str, Any] = {
            "deal": self._get(row, "deal"),
            "subject": self._get(row, "subject")[:200],
            "note": self._get(row, "note")[:5000],
            "type": ACTIVITY_WORDS.get(normalise(kind), "") if kind else ActivityType.TASK,
        }
        if not values["deal"]:
            problems.append(Problem(row.line, columns.get("deal", ""), "missing", "No deal id"))
        if not values["subject"]:
            problems.append(Problem(row.line, columns.get("subject", ""), "missing", "No subject"))
        if not values["type"]:
            problems.append(
                Problem(
                    row.line,
                    columns["type"],
                    "bad_value",
                    f"“{kind}” is not an activity type (call, meeting, demo, email, task, note)",
                )
            )
        values["due_at"] = self._when(row, "due", problems)
        try:
            values["done"] = parse_bool(self._get(row, "done")) if "done" in columns else False
        except ParseError as error:
            problems.append(Problem(row.line, columns["done"], "bad_value", error.message))
        values["done_at"] = self._when(row, "done_at", problems)
        if values["done_at"] is not None:
            values["done"] = True
        owner_name = self._get(row, "owner")
        values["owner"] = None
        if owner_name:
            user = self.owners.find(owner_name)
            if user is None:
                problems.append(
                    Problem(
                        row.line,
                        columns["owner"],
                        "unknown_owner",
                        f"No user matches owner “{owner_name}”",
                    )
                )
            values["owner"] = user
        return values, problems

    def write(self, rows: list[Row], recorder: Recorder) -> list[Outcome]:
        converted = [(row, *self.convert(row)) for row in rows]
        ids = {v["deal"] for _r, v, _p in converted if v["deal"]}
        deals = {
            d.external_id: d
            for d in policy.changeable_deals(self.by).filter(external_id__in=ids).order_by("-id")
        }
        existing = set(
            Activity.objects.filter(deal__in=list(deals.values())).values_list(
                "deal_id", "type", "subject", "due_at"
            )
        )
        outcomes: list[Outcome] = []
        new: list[tuple[Row, Activity, list[Problem]]] = []
        for row, values, problems in converted:
            deal = deals.get(values["deal"])
            if deal is None and values["deal"]:
                problems.append(
                    Problem(
                        row.line,
                        self.mapping.columns["deal"],
                        "unknown_deal",
                        f"No deal of yours has the id “{values['deal']}”",
                    )
                )
            if any(p.is_error for p in problems):
                outcomes.append(outcome_of(row.line, values["subject"], problems))
                continue
            key = (deal.pk, values["type"], values["subject"], values["due_at"])
            if key in existing:
                outcomes.append(Outcome(row.line, values["subject"], "unchanged", None, problems))
                continue
            existing.add(key)
            done_at = values["done_at"] or (
                values["due_at"] or self.now if values["done"] else None
            )
            activity = Activity(
                deal=deal,
                owner=values["owner"] or deal.owner,
                type=values["type"],
                subject=values["subject"],
                note=values["note"],
                due_at=values["due_at"],
                done=values["done"],
                done_at=done_at,
            )
            new.append((row, activity, problems))
        Activity.objects.bulk_create([a for _r, a, _p in new])
        refresh_activity_times({a.deal_id for _r, a, _p in new})
        for row, activity, problems in new:
            recorder.created(ACTIVITY, activity.pk)
            outcomes.append(Outcome(row.line, activity.subject, "created", activity.pk, problems))
        return sorted(outcomes, key=lambda o: o.line)
