"""The deal page around the board: closed deals, timeline, stage path (issue 16 flows)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from deals import services
from deals.models import Deal, FieldChange
from tests.factories import DealFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_winning_a_deal_sets_its_expected_close_date_to_the_day_it_was_won(rep, stages):
    deal = DealFactory(
        owner=rep,
        stage=stages["proposal"],
        expected_close_date=timezone.localdate() + timedelta(days=40),
    )
    services.move_deal(deal, stages["won"], by=rep, expected_version=deal.version)
    deal = Deal.objects.get(pk=deal.pk)
    assert deal.expected_close_date == timezone.localdate()
    assert FieldChange.objects.filter(deal=deal, field="expected_close_date").exists()


def test_losing_a_deal_keeps_its_expected_close_date(rep, stages):
    planned = timezone.localdate() + timedelta(days=40)
    deal = DealFactory(owner=rep, stage=stages["proposal"], expected_close_date=planned)
    services.complete_and_move(
        deal,
        stages["lost"],
        services.GateFixes(fields={"lost_reason": "No budget"}),
        by=rep,
        expected_version=deal.version,
    )
    assert Deal.objects.get(pk=deal.pk).expected_close_date == planned


def test_won_deal_page_shows_the_outcome_not_open_deal_guidance(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("900"))
    client = client_for(rep)
    client.post(
        reverse("deal_close", args=[deal.pk, "won"]), {"version": deal.version, "amount": "900"}
    )
    html = client.get(reverse("deal_detail", args=[deal.pk])).content.decode()
    assert "Won on" in html
    assert "Last open stage" not in html
    assert "To enter" not in html
    assert "Now: Won" not in html


def test_lost_deal_page_shows_the_reason(client_for, rep, stages):
    deal = DealFactory(
        owner=rep, stage=stages["lost"], lost_reason="Chose a competitor", closed_at=timezone.now()
    )
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    assert "Lost on" in html and "Chose a competitor" in html
    assert "Last open stage" not in html


def test_gate_form_accepts_an_override_reason_in_place_of_the_missing_field(
    client_for, manager, rep, stages
):
    from stages.models import CriterionKind
    from tests.factories import CriterionFactory

    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    data = {"stage": stages["qualified"].pk, "version": deal.version, "source": "menu"}
    response = client_for(manager).post(
        reverse("deal_fix_move", args=[deal.pk]), {**data, "override_reason": "Verbal yes"}
    )
    assert response.status_code == 302
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["qualified"].pk


def test_gate_form_without_a_reason_still_needs_the_missing_field(
    client_for, manager, rep, stages
):
    from stages.models import CriterionKind
    from tests.factories import CriterionFactory

    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    data = {"stage": stages["qualified"].pk, "version": deal.version, "source": "menu"}
    response = client_for(manager).post(reverse("deal_fix_move", args=[deal.pk]), data)
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["lead"].pk


def test_deal_page_lists_done_activities_with_their_notes(client_for, rep, stages):
    from deals import activities

    deal = DealFactory(owner=rep, stage=stages["lead"])
    activities.log_activity(
        deal, by=rep, type="call", subject="Intro call", done=True, note="Budget is 20k, Q1."
    )
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    done = html.split("<h3>Done</h3>", 1)[1].split("</ul>", 1)[0]
    assert "Intro call" in done and "Budget is 20k, Q1." in done
    timeline = html.split('id="timeline-title"', 1)[1]
    assert "Call done: Intro call" in timeline and "Budget is 20k, Q1." in timeline


def test_timeline_shows_planned_activities_with_their_notes(client_for, rep, stages):
    from deals import activities

    deal = DealFactory(owner=rep, stage=stages["lead"])
    activities.log_activity(
        deal,
        by=rep,
        type="meeting",
        subject="On-site visit",
        due_at=timezone.now() + timedelta(days=3),
        note="Bring the pricing sheet",
    )
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    timeline = html.split('id="timeline-title"', 1)[1]
    assert "Meeting planned for" in timeline and "On-site visit" in timeline
    assert "Bring the pricing sheet" in timeline


def test_timeline_writes_field_changes_with_labels_and_formatted_values(client_for, rep, stages):
    from contacts.models import Person

    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("16965.00"))
    services.update_deal(
        deal,
        {
            "amount": Decimal("20000"),
            "person": Person.objects.create(name="Dana Lee"),
            "expected_close_date": timezone.localdate().replace(month=3, day=31),
        },
        by=rep,
        expected_version=deal.version,
    )
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    timeline = html.split('id="timeline-title"', 1)[1]
    assert "Amount: $16,965.00 → $20,000.00" in timeline
    assert "Primary contact set to Dana Lee" in timeline
    assert "Expected close date set to Mar 31," in timeline
    assert "16965.00" not in timeline and "Changed person" not in timeline


def test_stage_path_shows_the_days_spent_in_each_stage(client_for, rep, stages):
    from deals.models import StageChange

    now = timezone.now()
    deal = DealFactory(owner=rep, stage=stages["lead"], stage_entered_at=now - timedelta(days=9))
    StageChange.objects.filter(deal=deal).update(at=now - timedelta(days=9))
    deal.stage_entered_at = now - timedelta(days=9)
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    StageChange.objects.filter(deal=deal, seq=2).update(at=now - timedelta(days=4))
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    path = html.split('aria-label="Stage path"', 1)[1].split("</nav>", 1)[0]
    lead, qualified = path.split("Qualified", 1)
    assert "5 days" in lead
    assert "4 days" in qualified
