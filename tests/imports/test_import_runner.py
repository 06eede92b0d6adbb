"""Importing deals: values mapped, every error kind reported, history from dates, the gate."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal

import pytest

from accounts import policy
from accounts.models import Role, Team, User
from contacts.models import Organization
from deals.models import Deal, FieldChange, GateEvent, StageChange
from imports import runner, services
from imports.models import ImportedRecord, ImportJob, ImportStatus
from imports.rows import noon
from stages.models import CriterionKind
from tests.factories import CriterionFactory, OrganizationFactory
from tests.imports.imports_support import csv_of, import_root, run, start  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

WON = "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054"
ENGAGING = "E1,rep,MG Special,Acme,Engaging,2016-11-03,,"


def problems_of(job: ImportJob) -> dict[str, int]:
    return {entry["kind"]: entry["count"] for entry in job.summary["problems"]}


def test_won_row_becomes_a_closed_deal_with_amount_and_close_date(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))

    deal = Deal.objects.get(external_id="A1")
    assert (job.status, job.created_count) == (ImportStatus.DONE, 1)
    assert (deal.stage, deal.amount, deal.owner, deal.product) == (
        stages["won"],
        Decimal("1054.00"),
        rep,
        "GTX Basic",
    )
    assert deal.closed_at == noon(date(2017, 3, 1))
    assert deal.created_at == noon(date(2016, 10, 20))


def test_history_comes_from_engage_and_close_dates_with_source_import(admin_user, rep, stages):
    run(admin_user, csv_of(WON))

    deal = Deal.objects.get(external_id="A1")
    history = list(
        StageChange.objects.filter(deal=deal)
        .order_by("seq")
        .values_list("seq", "from_stage", "to_stage", "at", "source", "by")
    )
    assert history == [
        (1, None, stages["qualified"].pk, noon(date(2016, 10, 20)), "import", admin_user.pk),
        (
            2,
            stages["qualified"].pk,
            stages["won"].pk,
            noon(date(2017, 3, 1)),
            "import",
            admin_user.pk,
        ),
    ]
    assert deal.version == 2
    assert deal.stage_entered_at == noon(date(2017, 3, 1))


def test_open_deal_enters_its_stage_on_its_engage_date(admin_user, rep, stages):
    run(admin_user, csv_of(ENGAGING))

    deal = Deal.objects.get(external_id="E1")
    assert (deal.stage, deal.closed_at, deal.stage_entered_at) == (
        stages["qualified"],
        None,
        noon(date(2016, 11, 3)),
    )
    assert StageChange.objects.filter(deal=deal).count() == 1


def test_deal_without_dates_starts_in_its_stage_now(admin_user, rep, stages):
    run(admin_user, csv_of("P1,rep,GTX Basic,Acme,Prospecting,,,"))

    deal = Deal.objects.get(external_id="P1")
    assert deal.stage == stages["lead"]
    assert StageChange.objects.get(deal=deal).at == deal.created_at


def test_title_is_made_from_product_and_organization(admin_user, rep, stages):
    run(admin_user, csv_of(WON))

    assert Deal.objects.get(external_id="A1").title == "GTX Basic for Acme"


def test_unknown_stage_fails_the_row(admin_user, rep, stages):
    job = run(admin_user, csv_of("X1,rep,GTX Basic,Acme,Negotiating,2016-10-20,,"))

    assert (job.failed_count, Deal.objects.count()) == (1, 0)
    assert problems_of(job)["unknown_stage"] == 1


def test_unknown_owner_fails_the_row(admin_user, rep, stages):
    job = run(admin_user, csv_of("X1,Nobody Here,GTX Basic,Acme,Won,2016-10-20,2017-01-02,5"))

    assert (job.failed_count, Deal.objects.count()) == (1, 0)
    assert problems_of(job)["unknown_owner"] == 1


def test_owner_is_matched_by_email_or_full_name(admin_user, rep, stages):
    rows = [
        f"M1,{rep.email.upper()},GTX Basic,Acme,Prospecting,,,",
        f"M2,{rep.first_name} {rep.last_name},GTX Basic,Acme,Prospecting,,,",
    ]
    run(admin_user, csv_of(*rows))

    assert set(Deal.objects.values_list("owner", flat=True)) == {rep.pk}


def test_bad_amount_fails_the_row(admin_user, rep, stages):
    job = run(admin_user, csv_of("X1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,12x"))

    assert (job.failed_count, Deal.objects.count()) == (1, 0)
    assert problems_of(job)["bad_amount"] == 1


def test_amount_with_currency_symbol_and_thousands_separator_is_read(admin_user, rep, stages):
    run(admin_user, csv_of('A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,"€1.234,50"'))

    deal = Deal.objects.get()
    assert (deal.amount, deal.currency) == (Decimal("1234.50"), "EUR")


def test_bad_date_fails_the_row(admin_user, rep, stages):
    job = run(admin_user, csv_of("X1,rep,GTX Basic,Acme,Won,2016-10-20,2017-13-45,10"))

    assert (job.failed_count, Deal.objects.count()) == (1, 0)
    assert problems_of(job)["bad_date"] == 1


def test_day_month_dates_are_read_when_the_file_proves_the_order(admin_user, rep, stages):
    run(admin_user, csv_of("D1,rep,GTX Basic,Acme,Won,20/10/2016,01/03/2017,10"))

    assert Deal.objects.get().closed_at == noon(date(2017, 3, 1))


def test_close_date_before_engage_date_fails_the_row(admin_user, rep, stages):
    job = run(admin_user, csv_of("X1,rep,GTX Basic,Acme,Won,2017-10-20,2017-03-01,10"))

    assert problems_of(job)["dates_out_of_order"] == 1
    assert Deal.objects.count() == 0


def test_duplicate_id_in_file_imports_the_first_and_skips_the_next(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON, "A1,rep,MG Special,Other,Won,2016-10-20,2017-03-01,99"))

    assert (job.created_count, job.skipped_count) == (1, 1)
    assert Deal.objects.get().product == "GTX Basic"
    assert problems_of(job)["duplicate_id"] == 1


def test_reimporting_the_same_file_duplicates_nothing(admin_user, rep, stages):
    text = csv_of(WON, ENGAGING, "P1,rep,GTX Basic,,Prospecting,,,")
    run(admin_user, text)

    again = run(admin_user, text)

    assert (again.created_count, again.unchanged_count, again.updated_count) == (0, 3, 0)
    assert Deal.objects.count() == 3
    assert StageChange.objects.count() == 4
    assert Organization.objects.count() == 1


def test_reimport_updates_changed_fields_and_records_them(admin_user, rep, stages):
    run(admin_user, csv_of("E1,rep,MG Special,Acme,Engaging,2016-11-03,2017-05-01,100"))

    again = run(admin_user, csv_of("E1,rep,MG Special,Acme,Engaging,2016-11-03,2017-05-01,250"))

    deal = Deal.objects.get()
    assert (again.updated_count, deal.amount, deal.version) == (1, Decimal("250.00"), 2)
    assert FieldChange.objects.get(deal=deal).new_value == "250.00"
    assert ImportedRecord.objects.get(job=again).before == {"amount": "100.00"}


def test_reimport_with_a_later_stage_moves_the_deal_through_the_move_service(
    admin_user, rep, stages
):
    run(admin_user, csv_of(ENGAGING))

    run(admin_user, csv_of("E1,rep,MG Special,Acme,Won,2016-11-03,2017-03-01,70"))

    deal = Deal.objects.get()
    latest = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    assert (deal.stage, deal.amount, deal.closed_at is not None) == (
        stages["won"],
        Decimal("70.00"),
        True,
    )
    assert (latest.seq, latest.from_stage, latest.source) == (2, stages["qualified"], "import")


def test_rows_failing_an_entry_criterion_are_reported_not_imported(admin_user, rep, stages):
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )

    job = run(admin_user, csv_of(ENGAGING))

    assert (job.failed_count, Deal.objects.count()) == (1, 0)
    entry = next(e for e in job.summary["problems"] if e["kind"] == "gate")
    assert "Qualified: Add an expected close date" in entry["examples"][0]


def test_override_imports_gated_rows_with_the_reason_on_the_stage_change(admin_user, rep, stages):
    criterion = CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )

    job = run(admin_user, csv_of(ENGAGING), override_reason="Legacy data, dates unknown")

    change = StageChange.objects.get(deal__external_id="E1")
    assert job.created_count == 1
    assert (change.override_reason, change.overridden) == (
        "Legacy data, dates unknown",
        ["Add an expected close date"],
    )
    event = GateEvent.objects.get()
    assert (event.criterion, event.outcome, event.source) == (criterion, "overridden", "import")


def test_gate_sees_the_history_being_imported(admin_user, rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.MIN_DAYS_IN_PREVIOUS, days=30)
    header = "opportunity_id,sales_agent,deal_stage,create date,engage_date"
    quick = "Q1,rep,Engaging,2017-01-01,2017-01-10"
    slow = "S1,rep,Engaging,2017-01-01,2017-03-10"

    job = run(admin_user, csv_of(quick, slow, header=header))

    assert list(Deal.objects.values_list("external_id", flat=True)) == ["S1"]
    assert "Spend at least 30 days in Lead in first" in job.summary["problems"][0]["examples"][0]


def test_lost_row_without_reason_is_blocked_by_the_built_in_rule(admin_user, rep, stages):
    job = run(
        admin_user,
        csv_of("L1,rep,GTX Basic,Acme,Lost,2016-10-20,2017-03-01,0"),
        default_lost_reason="",
    )

    assert job.failed_count == 1
    assert "Give a lost reason" in job.summary["problems"][0]["examples"][0]


def test_lost_row_gets_the_default_reason_with_a_warning(admin_user, rep, stages):
    job = run(
        admin_user,
        csv_of("L1,rep,GTX Basic,Acme,Lost,2016-10-20,2017-03-01,0"),
        default_lost_reason="Lost (imported)",
    )

    assert Deal.objects.get().lost_reason == "Lost (imported)"
    assert problems_of(job)["lost_reason_default"] == 1


def test_manager_cannot_import_deals_for_owners_outside_their_teams(
    manager, rep, outsider, stages
):
    job = run(
        manager,
        csv_of(
            "M1,rep,GTX Basic,Acme,Prospecting,,,",
            "M2,outsider,GTX Basic,Acme,Prospecting,,,",
        ),
    )

    assert list(Deal.objects.values_list("external_id", flat=True)) == ["M1"]
    assert problems_of(job)["owner_out_of_scope"] == 1


def test_manager_cannot_update_a_deal_outside_their_teams(admin_user, manager, outsider, stages):
    run(admin_user, csv_of("O1,outsider,GTX Basic,Acme,Prospecting,,,"))

    job = run(manager, csv_of("O1,manager,GTX Basic,Acme,Prospecting,,,"))

    assert problems_of(job)["not_editable"] == 1
    assert Deal.objects.get().owner == outsider


def test_unknown_owners_are_assigned_in_the_mapping(admin_user, rep, stages):
    run(
        admin_user,
        csv_of("X1,Moses Frase,GTX Basic,Acme,Prospecting,,,"),
        owners={"Moses Frase": rep.pk},
    )

    assert Deal.objects.get().owner == rep


def test_create_missing_makes_reps_managers_and_teams(admin_user, stages):
    members = [
        {"member": "Moses Frase", "manager": "Dustin Brinkmann", "team": "Central"},
        {"member": "Anna Snelling", "manager": "Dustin Brinkmann", "team": "Central"},
    ]
    run(
        admin_user,
        csv_of("X1,Moses Frase,GTX Basic,Acme,Prospecting,,,"),
        reference={"team_members": members},
        create_missing=True,
    )

    moses = User.objects.get(first_name="Moses", last_name="Frase")
    team = Team.objects.get(name="Central (Dustin Brinkmann)")
    assert (moses.role, moses.team, moses.has_usable_password()) == (Role.REP, team, False)
    assert (team.manager.get_full_name(), team.manager.role) == ("Dustin Brinkmann", Role.MANAGER)
    assert User.objects.filter(team=team).count() == 3
    assert Deal.objects.get().owner == moses


def test_managers_cannot_create_users(manager, stages):
    job = run(manager, csv_of("X1,Moses Frase,GTX Basic,Acme,Prospecting,,,"), create_missing=True)

    assert job.failed_count == 1
    assert not User.objects.filter(last_name="Frase").exists()


def test_organizations_are_matched_by_name_ignoring_case(admin_user, rep, stages):
    existing = OrganizationFactory(name="Acme")

    run(admin_user, csv_of("A1,rep,GTX Basic,ACME,Prospecting,,,"))

    assert Deal.objects.get().organization == existing
    assert Organization.objects.count() == 1


def test_missing_organizations_are_created_with_details_from_the_organizations_file(
    admin_user, rep, stages
):
    reference = services.read_companions(
        organizations=_file(
            "account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
            "Acme,technolgy,1996,1100.04,2822,United States,\n"
        )
    )

    job = run(admin_user, csv_of(WON), reference=reference)

    acme = Deal.objects.get().organization
    assert (acme.name, acme.sector, acme.employees, acme.annual_revenue) == (
        "Acme",
        "technology",
        2822,
        Decimal("1100040000.00"),
    )
    assert job.summary["companions"]["organizations"] == {"created": 1}


def test_product_spelling_is_corrected_from_the_products_file(admin_user, rep, stages):
    reference = {"products": ["GTX Pro", "GTX Basic"]}

    job = run(admin_user, csv_of("A1,rep,GTXPro,Acme,Prospecting,,,"), reference=reference)

    assert Deal.objects.get().product == "GTX Pro"
    assert problems_of(job)["product_spelling"] == 1


def test_summary_file_has_one_line_per_row_with_its_outcome(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON, "X1,rep,GTX Basic,Acme,Negotiating,,,"))

    with job.summary_file.open("r") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["line", "id or name", "outcome", "record id", "problems"]
    assert [(line[0], line[1], line[2]) for line in lines[1:]] == [
        ("2", "A1", "created"),
        ("3", "X1", "failed"),
    ]
    assert "Negotiating" in lines[2][4]


def test_summary_file_neutralises_formula_cells(admin_user, rep, stages):
    job = run(admin_user, csv_of("=cmd|x,rep,GTX Basic,Acme,Nope,,,"))

    with job.summary_file.open("r") as handle:
        lines = list(csv.reader(handle))
    assert lines[1][1] == "'=cmd|x"


def test_a_killed_run_resumes_after_the_last_committed_batch(admin_user, rep, stages, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_SIZE", 2)
    text = csv_of(*(f"K{i},rep,GTX Basic,Acme,Prospecting,,," for i in range(5)))
    job = start(admin_user, text)
    services.confirm_import(job, by=admin_user, run_in_background=False)

    def killed(job: ImportJob) -> None:
        raise KeyboardInterrupt  # the worker dies; BaseException escapes the runner

    with pytest.raises(KeyboardInterrupt):
        runner.run_import(job.pk, progress=killed)
    job.refresh_from_db()
    assert (job.status, job.processed_rows, Deal.objects.count()) == ("running", 2, 2)

    resumed = runner.run_import(job.pk)

    assert (resumed.status, resumed.created_count, Deal.objects.count()) == ("done", 5, 5)


def test_a_finished_job_is_not_run_again(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))

    again = runner.run_import(job.pk)

    assert (again.status, again.created_count, Deal.objects.count()) == ("done", 1, 1)


def test_rep_may_not_start_an_import(rep, stages):
    with pytest.raises(services.NotAllowed):
        start(rep, csv_of(WON))


def test_new_deals_go_on_top_of_their_column(admin_user, rep, stages):
    from tests.factories import DealFactory

    existing = DealFactory(owner=rep, stage=stages["lead"], position=0)

    run(admin_user, csv_of("P1,rep,GTX Basic,Acme,Prospecting,,,"))

    assert list(Deal.objects.filter(stage=stages["lead"]).order_by("position")) == [
        Deal.objects.get(external_id="P1"),
        existing,
    ]


def test_import_schedules_stalled_forecast_and_summary_follow_ups_once(admin_user, rep, stages):
    from common.models import OutboxMessage

    run(admin_user, csv_of(WON, ENGAGING))

    assert sorted(OutboxMessage.objects.values_list("task", flat=True)) == [
        "deals.check_stalled",
        "reports.recompute_forecasts",
        "reports.refresh_stage_stays",
    ]


def _file(text: str):
    import io

    return io.BytesIO(text.encode())


def test_only_admins_and_managers_may_import(admin_user, manager, rep):
    assert [policy.can_import(u) for u in (admin_user, manager, rep)] == [True, True, False]


@pytest.mark.parametrize("name", ["imports.run_import", "deals.run_import"])
def test_a_confirmed_job_runs_under_its_task_name_and_the_name_queued_before_the_move(
    admin_user, rep, stages, name
):
    from pipeline_crm.celery import app

    job = start(admin_user, csv_of(WON))
    services.confirm_import(job, by=admin_user, run_in_background=False)

    result = app.tasks[name].apply(args=[job.pk], throw=True).get()

    assert result["status"] == ImportStatus.DONE
    assert Deal.objects.filter(external_id="A1").exists()
