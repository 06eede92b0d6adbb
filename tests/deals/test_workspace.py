"""The deal workspace: edits, activities, quick actions, reassignment, bulk moves."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from common.errors import NotAllowed
from deals import activities, services
from deals.models import Activity, Deal, FieldChange, StageChange
from stages.models import CriterionKind
from tests.factories import ActivityFactory, CriterionFactory, DealFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- services -----------------------------------------------------------------------------


def test_update_deal_records_each_changed_field(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    services.update_deal(
        deal, {"amount": Decimal("250"), "title": deal.title}, by=rep, expected_version=1
    )
    deal.refresh_from_db()
    assert deal.amount == Decimal("250") and deal.version == 2
    change = FieldChange.objects.get(deal=deal)
    assert (change.field, change.old_value, change.new_value) == ("amount", "100.00", "250")


def test_update_deal_counts_a_later_close_date_as_a_slip(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], expected_close_date=date(2027, 1, 1))
    services.update_deal(
        deal, {"expected_close_date": date(2027, 2, 1)}, by=rep, expected_version=1
    )
    services.update_deal(
        deal, {"expected_close_date": date(2027, 1, 15)}, by=rep, expected_version=2
    )
    deal.refresh_from_db()
    assert deal.close_date_pushes == 1


def test_update_deal_ignores_fields_outside_the_edit_list(rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.update_deal(
        deal, {"owner": outsider, "version": 99, "title": "New"}, by=rep, expected_version=1
    )
    deal.refresh_from_db()
    assert deal.owner == rep and deal.title == "New" and deal.version == 2


def test_update_deal_refuses_a_stale_version(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], version=2)
    with pytest.raises(services.VersionConflict):
        services.update_deal(deal, {"title": "x"}, by=rep, expected_version=1)
    deal.refresh_from_db()
    assert deal.title != "x"


def test_stage_change_in_the_edit_form_goes_through_the_gate(rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(services.GateBlocked):
        services.update_deal(
            deal,
            {"title": "Renamed"},
            by=rep,
            expected_version=1,
            to_stage=stages["qualified"],
        )
    deal.refresh_from_db()
    assert deal.title != "Renamed" and deal.stage == stages["lead"]


def test_stage_change_in_the_edit_form_is_a_move_with_source_form(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.update_deal(deal, {}, by=rep, expected_version=1, to_stage=stages["qualified"])
    last = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    assert (last.to_stage, last.source) == (stages["qualified"], "form")


def test_log_activity_done_sets_done_time(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    activity = activities.log_activity(deal, by=rep, type="call", subject="Called", done=True)
    assert activity.done and activity.done_at is not None


def test_teammate_cannot_log_activity_on_my_deal(rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(NotAllowed):
        activities.log_activity(deal, by=teammate, type="call", subject="x")
    assert not Activity.objects.filter(deal=deal).exists()


def test_completing_twice_keeps_the_first_completion_time(rep, stages):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]))
    first = activities.complete_activity(activity.pk, by=rep).done_at
    second = activities.complete_activity(activity.pk, by=rep).done_at
    assert first == second


def test_manager_cannot_delete_a_reps_activity(rep, manager, stages):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    with pytest.raises(services.DealError):
        activities.delete_activity(activity.pk, by=manager)
    assert Activity.objects.filter(pk=activity.pk).exists()


def test_owner_deletes_own_activity(rep, stages):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    activities.delete_activity(activity.pk, by=rep)
    assert not Activity.objects.filter(pk=activity.pk).exists()


def test_rep_cannot_reassign(rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(NotAllowed):
        services.reassign_deal(deal, new_owner=teammate, by=rep, expected_version=1)


def test_manager_reassigns_within_the_team(rep, teammate, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=1)
    deal.refresh_from_db()
    assert deal.owner == teammate
    assert FieldChange.objects.filter(deal=deal, field="owner").exists()


def test_manager_cannot_reassign_to_another_team(rep, outsider, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(NotAllowed):
        services.reassign_deal(deal, new_owner=outsider, by=manager, expected_version=1)


def test_bulk_move_reports_each_deal(rep, outsider, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    ready = DealFactory(owner=rep, stage=stages["lead"], next_step="Call")
    blocked = DealFactory(owner=rep, stage=stages["lead"])
    foreign = DealFactory(owner=outsider, stage=stages["lead"])
    outcomes = services.bulk_move([ready.pk, blocked.pk, foreign.pk], stages["qualified"], by=rep)
    assert [(o.deal_id, o.moved) for o in outcomes] == [
        (ready.pk, True),
        (blocked.pk, False),
        (foreign.pk, False),
    ]
    assert outcomes[1].reason == "Write the next step"
    assert outcomes[2].reason == "Deal not found."
    assert Deal.objects.get(pk=foreign.pk).stage == stages["lead"]
    assert StageChange.objects.filter(deal=ready, source="bulk").exists()


# --- views --------------------------------------------------------------------------------


def test_deal_page_query_count_is_fixed(client_for, rep, stages, django_assert_num_queries):
    few = DealFactory(owner=rep, stage=stages["lead"])
    many = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory.create_batch(12, deal=many)
    client = client_for(rep)
    with django_assert_num_queries(DEAL_PAGE_QUERIES):
        client.get(reverse("deal_detail", args=[few.pk]))
    with django_assert_num_queries(DEAL_PAGE_QUERIES):
        client.get(reverse("deal_detail", args=[many.pk]))


DEAL_PAGE_QUERIES = 14  # + the stage path's days per stage


def test_edit_rejects_negative_amount_and_changes_nothing(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("10"))
    response = client_for(rep).post(
        reverse("deal_edit", args=[deal.pk]),
        {"title": "T", "amount": "-5", "currency": "USD", "version": 1, "stage": deal.stage_id},
        **HTMX,
    )
    assert response.status_code == 422
    assert "greater than or equal to 0" in response.content.decode()
    deal.refresh_from_db()
    assert deal.amount == Decimal("10") and deal.version == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "abc", "Enter a number."),
        ("amount", "NaN", "Enter a number."),
        ("amount", "1e20", "Ensure that there are no more than"),
        ("expected_close_date", "2027-02-30", "Enter a valid date."),
        ("title", "x" * 201, "Ensure this value has at most 200 characters"),
        ("currency", "dollars", "Use a three-letter currency code"),
    ],
)
def test_edit_rejects_bad_input_with_a_message(client_for, rep, stages, field, value, message):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Keep")
    data = {"title": "Keep", "currency": "USD", "version": 1, "stage": deal.stage_id}
    data[field] = value
    response = client_for(rep).post(reverse("deal_edit", args=[deal.pk]), data, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    deal.refresh_from_db()
    assert deal.version == 1 and deal.title == "Keep"


def test_edit_saves_and_creates_organization_by_name(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_edit", args=[deal.pk]),
        {
            "title": "Renamed",
            "amount": "1,500.50".replace(",", ""),
            "currency": "eur",
            "version": 1,
            "stage": deal.stage_id,
            "organization_name": "Acme <b>Corp</b>",
        },
        **HTMX,
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.title, deal.amount, deal.currency) == ("Renamed", Decimal("1500.50"), "EUR")
    assert deal.organization.name == "Acme <b>Corp</b>"
    assert "Acme &lt;b&gt;Corp&lt;/b&gt;" in response.content.decode()


def test_edit_page_is_404_for_outsiders(client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert client_for(outsider).get(reverse("deal_edit", args=[deal.pk])).status_code == 404


def test_teammate_cannot_edit(client_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Mine")
    response = client_for(teammate).post(
        reverse("deal_edit", args=[deal.pk]),
        {"title": "Hijack", "currency": "USD", "version": 1, "stage": deal.stage_id},
    )
    assert response.status_code == 403
    assert Deal.objects.get(pk=deal.pk).title == "Mine"


def test_mark_won_requires_an_amount(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=None)
    client = client_for(rep)
    response = client.post(reverse("deal_close", args=[deal.pk, "won"]), {"version": 1}, **HTMX)
    assert response.status_code == 422
    assert "Add an amount to mark the deal won" in response.content.decode()
    response = client.post(
        reverse("deal_close", args=[deal.pk, "won"]), {"version": 1, "amount": "900"}, **HTMX
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages["won"] and deal.amount == Decimal("900") and deal.closed_at


def test_mark_lost_requires_a_reason(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"])
    client = client_for(rep)
    response = client.post(reverse("deal_close", args=[deal.pk, "lost"]), {"version": 1}, **HTMX)
    assert response.status_code == 422
    response = client.post(
        reverse("deal_close", args=[deal.pk, "lost"]),
        {"version": 1, "lost_reason": "Price"},
        **HTMX,
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages["lost"] and deal.lost_reason == "Price"


def test_log_and_complete_activity_from_the_deal_page(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    due = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("activity_create", args=[deal.pk]),
        {"type": "demo", "subject": "Demo for <i>them</i>", "due_at": due},
        **HTMX,
    )
    assert response.status_code == 200
    activity = Activity.objects.get(deal=deal)
    assert "Demo for &lt;i&gt;them&lt;/i&gt;" in response.content.decode()
    response = client.post(reverse("activity_complete", args=[activity.pk]), **HTMX)
    assert response.status_code == 200
    activity.refresh_from_db()
    assert activity.done


def test_activity_with_impossible_date_is_rejected(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("activity_create", args=[deal.pk]),
        {"type": "call", "subject": "x", "due_at": "2027-13-45T10:00"},
        **HTMX,
    )
    assert response.status_code == 422
    assert not Activity.objects.filter(deal=deal).exists()


def test_activity_of_another_team_is_404(client_for, rep, outsider, stages):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]))
    response = client_for(outsider).post(reverse("activity_complete", args=[activity.pk]))
    assert response.status_code == 404
    activity.refresh_from_db()
    assert not activity.done


def test_my_activities_groups_overdue_today_and_upcoming(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    now = timezone.now()
    ActivityFactory(deal=deal, owner=rep, subject="Late one", due_at=now - timedelta(days=2))
    ActivityFactory(deal=deal, owner=rep, subject="Soon one", due_at=now + timedelta(days=3))
    ActivityFactory(deal=deal, owner=rep, subject="Finished", due_at=now, done=True, done_at=now)
    response = client_for(rep).get(reverse("my_activities"))
    groups = {k: [a.subject for a in response.context[k]] for k in ("overdue", "upcoming")}
    assert groups == {"overdue": ["Late one"], "upcoming": ["Soon one"]}
    assert "Finished" not in response.content.decode()


def test_my_activities_query_count_is_fixed(client_for, rep, stages, django_assert_num_queries):
    client = client_for(rep)
    with django_assert_num_queries(4):
        client.get(reverse("my_activities"))
    ActivityFactory.create_batch(20, deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    with django_assert_num_queries(4):
        client.get(reverse("my_activities"))


def test_new_deal_from_a_column_lands_in_that_stage(client_for, rep, stages):
    response = client_for(rep).post(
        reverse("deal_new"),
        {"stage": stages["qualified"].pk, "title": "Fresh", "currency": "USD", "amount": "10"},
    )
    assert response.status_code == 302
    deal = Deal.objects.get(title="Fresh")
    assert deal.stage == stages["qualified"] and deal.owner == rep
    assert StageChange.objects.get(deal=deal).source == "create"


def test_new_deal_respects_the_stage_gate(client_for, rep, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    response = client_for(rep).post(
        reverse("deal_new"),
        {"stage": stages["qualified"].pk, "title": "Gated", "currency": "USD"},
    )
    assert response.status_code == 422
    assert "Write the next step" in response.content.decode()
    assert not Deal.objects.filter(title="Gated").exists()


def test_bulk_move_page_lists_outcomes(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Bulk one")
    response = client_for(rep).post(
        reverse("bulk_move"), {"deals": [deal.pk], "stage": stages["qualified"].pk}
    )
    assert response.status_code == 200
    assert "Moved" in response.content.decode()
    assert Deal.objects.get(pk=deal.pk).stage == stages["qualified"]


def test_inactive_user_is_logged_out_on_next_request(client_for, stages, team):
    user = UserFactory(team=team)
    client = client_for(user)
    user.is_active = False
    user.save()
    assert client.get(reverse("board")).status_code == 302


def test_reschedule_an_activity_from_the_deal_page(client_for, rep, stages):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    client = client_for(rep)
    page = client.get(reverse("deal_detail", args=[activity.deal_id])).content.decode()
    assert reverse("activity_update", args=[activity.pk]) in page
    response = client.post(
        reverse("activity_update", args=[activity.pk]),
        {"type": "meeting", "subject": "Moved", "due_at": "2027-05-04T09:30", "note": ""},
        **HTMX,
    )
    assert response.status_code == 200
    activity.refresh_from_db()
    assert (activity.type, activity.subject) == ("meeting", "Moved")
    assert activity.due_at.strftime("%Y-%m-%d %H:%M") == "2027-05-04 09:30"
