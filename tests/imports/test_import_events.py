"""Imports publish their events: deal.created (and won/lost) for the deals they create,
in one INSERT per batch; the deal actions' events for the deals they change; deal.deleted
when undone. Every one has source "import", the job's id and the importer's choice of
running automations (the preview's option, off by default)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deals.models import Deal, Event
from imports import runner, services
from imports.mapping import Mapping
from imports.undo import undo_import
from tests.imports.imports_support import csv_of, import_root, run, start  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

WON = "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054"
ENGAGING = "E1,rep,MG Special,Acme,Engaging,2016-11-03,,"


def published(**filters) -> list[tuple[str, int | None]]:
    rows = Event.objects.filter(**filters).order_by("id")
    return list(rows.values_list("name", "deal_id"))


def test_created_deals_publish_deal_created_and_their_outcome(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON, ENGAGING))

    won = Deal.objects.get(external_id="A1")
    engaging = Deal.objects.get(external_id="E1")
    assert sorted(published()) == sorted(
        [("deal.created", won.pk), ("deal.won", won.pk), ("deal.created", engaging.pk)]
    )
    created = Event.objects.get(name="deal.created", deal_id=engaging.pk)
    assert (created.source, created.actor) == ("import", admin_user)
    assert created.payload == {
        "deal_id": engaging.pk,
        "owner_id": rep.pk,
        "stage_id": stages["qualified"].pk,
        "pipeline_id": stages["qualified"].pipeline_id,
        "import": job.pk,
        "automations": False,
    }


def test_a_batch_writes_its_events_in_one_insert(admin_user, rep, stages):
    job = start(admin_user, csv_of(*(f"R{i},rep,GTX,Acme,Prospecting,,," for i in range(30))))
    services.confirm_import(job, by=admin_user, run_in_background=False)
    with CaptureQueriesContext(connection) as queries:
        runner.run_import(job.pk)
    table = Event._meta.db_table
    inserts = [q["sql"] for q in queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(inserts) == 1
    assert Event.objects.filter(name="deal.created").count() == 30


def test_changed_deals_publish_the_actions_events_tagged_with_the_job(admin_user, rep, stages):
    run(admin_user, csv_of(ENGAGING))
    deal = Deal.objects.get()
    again = run(admin_user, csv_of("E1,rep,MG Special,Acme,Won,2016-11-03,2017-03-01,70"))

    later = Event.objects.filter(payload__import=again.pk).order_by("id")
    assert [e.name for e in later] == ["deal.updated", "deal.moved", "deal.won"]
    assert {(e.source, e.deal_id, e.payload["automations"]) for e in later} == {
        ("import", deal.pk, False)
    }


def test_a_new_owner_from_a_reimport_is_a_reassignment_from_the_import(
    admin_user, rep, teammate, stages
):
    run(admin_user, csv_of(ENGAGING))
    again = run(admin_user, csv_of(f"E1,{teammate.username},MG Special,Acme,Engaging,,,"))
    reassigned = Event.objects.get(name="deal.reassigned")
    assert (reassigned.source, reassigned.payload["import"]) == ("import", again.pk)


def test_the_importers_choice_of_automations_travels_with_every_event(admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))
    services.update_mapping(
        job,
        by=admin_user,
        mapping=Mapping.from_json(job.mapping),
        pipeline=job.pipeline,
        run_automations=True,
    )
    services.confirm_import(job, by=admin_user, run_in_background=False)
    runner.run_import(job.pk)
    assert {e.payload["automations"] for e in Event.objects.all()} == {True}


def test_undo_publishes_deal_deleted_for_each_created_deal(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON, ENGAGING))
    ids = set(Deal.objects.values_list("pk", flat=True))

    undo_import(job, by=admin_user)

    deleted = Event.objects.filter(name="deal.deleted")
    assert {e.deal_id for e in deleted} == ids
    assert {(e.source, e.actor_id, e.payload["import"]) for e in deleted} == {
        ("import", admin_user.pk, job.pk)
    }
    assert {e.payload["owner_id"] for e in deleted} == {rep.pk}


def test_refused_undo_publishes_nothing(admin_user, manager, rep, stages):
    job = run(admin_user, csv_of(WON))
    before = Event.objects.count()
    with pytest.raises(services.NotAllowed):
        undo_import(job, by=manager)
    assert Event.objects.count() == before


# --- the preview's option ----------------------------------------------------------------


def test_preview_offers_automations_off_by_default(client_for, admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))
    page = client_for(admin_user).get(reverse("import_preview", args=[job.pk])).text
    assert "Run automations for the imported deals" in page
    (box,) = re.findall(r"<input[^>]*run_automations[^>]*>", page)
    assert "checked" not in box
    assert not job.run_automations


def test_preview_post_stores_the_automations_choice(client_for, admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))
    data = {
        "pipeline": stages["lead"].pipeline_id,
        "col_external_id": "opportunity_id",
        "col_owner": "sales_agent",
        "col_stage": "deal_stage",
        "default_currency": "USD",
        "date_order": "auto",
        "run_automations": "on",
    }
    response = client_for(admin_user).post(reverse("import_preview", args=[job.pk]), data)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.run_automations is True


def test_flag_and_forecast_consumers_leave_an_imports_events_to_its_follow_ups(
    admin_user, rep, stages, monkeypatch
):
    """The import refreshes every flag and forecast once when it finishes (FOLLOW_UPS):
    its events must not start the same work again per batch."""
    from deals import events, stalled
    from reports import forecasts

    run(admin_user, csv_of(WON, ENGAGING))
    calls = []
    monkeypatch.setattr(stalled, "refresh_flags", lambda **kw: calls.append(("flags", kw)))
    monkeypatch.setattr(forecasts, "recompute", lambda **kw: calls.append(("forecast", kw)))
    events.process([str(pk) for pk in Event.objects.values_list("pk", flat=True)])
    assert calls == []
    assert not Event.objects.filter(handled_at__isnull=True).exists()
