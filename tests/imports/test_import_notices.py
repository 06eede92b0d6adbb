"""Importing history: one notice per import to the importer, none per deal; the imported
open deals' stalled flags are computed as any deal's."""

from __future__ import annotations

import pytest

from deals import stalled
from deals.models import Deal, Notification, QuietDeal, StalledFlag, StalledRule
from tests.imports.imports_support import csv_of, import_root, run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

# Open deals engaged years ago: each is in its stage far too long, without a next step.
OPEN_ROWS = [f"E{i},rep,MG Special,Acme,Engaging,2016-11-0{i},," for i in range(1, 6)]


@pytest.fixture
def imported(admin_user, rep, stages):
    stages["qualified"].rotting_days = 14
    stages["qualified"].save()
    job = run(admin_user, csv_of(*OPEN_ROWS))
    stalled.refresh_flags()
    return job


def test_imported_open_deals_are_flagged_as_any_deal(imported):
    flagged = set(
        StalledFlag.objects.filter(rule=StalledRule.IN_STAGE_TOO_LONG).values_list(
            "deal__external_id", flat=True
        )
    )
    assert flagged == {f"E{i}" for i in range(1, 6)}


def test_import_raises_no_stalled_notice_per_deal(imported, rep):
    assert not Notification.objects.filter(user=rep).exists()
    assert not StalledFlag.objects.filter(notified_at__isnull=True).exists()


def test_importer_gets_one_notice_for_the_whole_import(imported, admin_user):
    notices = Notification.objects.filter(user=admin_user)
    assert [(n.kind, n.deal_id) for n in notices] == [("import", None)]
    assert "5 deals created" in notices[0].text


def test_a_flag_raised_after_the_import_notifies_the_owner(imported, rep):
    assert not QuietDeal.objects.exists()
    deal = Deal.objects.get(external_id="E1")
    Deal.objects.filter(pk=deal.pk).update(expected_close_date="2017-01-01")
    stalled.refresh_flags()
    notices = Notification.objects.filter(user=rep)
    assert [(n.deal_id, "close date" in n.text.lower()) for n in notices] == [(deal.pk, True)]
