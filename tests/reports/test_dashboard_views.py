"""The dashboard page, its htmx partial, CSV exports and their SQL query counts."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reports.dashboard import stays
from reports.dashboard.panels import PANELS
from reports.models import StageStay
from tests.factories import StageFactory
from tests.reports.dashboard_data import MARCH_QUERY, build_history, make_deal

URL = "/reports/dashboard/"


@pytest.fixture
def history(stages, rep, teammate, outsider):
    return build_history(stages, rep=rep, teammate=teammate, outsider=outsider)


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


def read_csv(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def add_deals(stages, owner, count):
    """`count` more deals with three history rows each, spread over the recent past."""
    now = timezone.now()
    for i in range(count):
        start = now - timedelta(days=40 - i % 30)
        make_deal(
            owner,
            [
                (stages["lead"], start),
                (stages["qualified"], start + timedelta(days=2)),
                (stages["won"] if i % 3 == 0 else stages["demo"], start + timedelta(days=5)),
            ],
            title=f"Extra {i}",
        )


def test_dashboard_is_reachable_by_its_url_name():
    assert reverse("reports:dashboard") == URL


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_page_shows_every_panel_with_its_csv_link(manager_client, history):
    response = manager_client.get(URL, MARCH_QUERY)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    for slug in PANELS:
        assert f'id="panel-{slug}"' in html
        assert f"/reports/dashboard/{slug}.csv?" in html


def test_htmx_request_renders_only_the_panels(manager_client, history):
    response = manager_client.get(URL, MARCH_QUERY, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="dashboard-panels"')
    assert "<html" not in html
    assert 'id="panel-bottleneck"' in html


def test_filter_form_reloads_panels_by_htmx_and_keeps_filters_in_the_url(manager_client):
    html = manager_client.get(URL).content.decode()
    assert 'hx-get="/reports/dashboard/"' in html
    assert 'hx-target="#dashboard-panels"' in html
    assert 'hx-push-url="true"' in html
    assert 'method="get"' in html


def test_page_highlights_the_worst_stage_with_a_link_to_the_board(
    manager_client, history, stages, pipeline
):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    assert "Bottleneck: Proposal" in html
    assert f'href="/?pipeline={pipeline.pk}&amp;stage={stages["proposal"].pk}"' in html
    assert "H euro" in html
    assert re.search(r'<g class="row row-worst">.*?Proposal', html)


def test_board_link_keeps_the_team_and_owner_filters(
    manager_client, history, stages, team, rep, pipeline
):
    query = {**MARCH_QUERY, "team": team.pk, "owner": rep.pk}
    html = manager_client.get(URL, query).content.decode()
    # rep owns no deal in Proposal, so Lead in (2 waiting x 4 days) is the worst.
    board = f"/?pipeline={pipeline.pk}&amp;stage={stages['lead'].pk}"
    assert f'href="{board}&amp;owner={rep.pk}&amp;team={team.pk}"' in html


def test_page_has_no_inline_style_or_script(manager_client, history):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    assert "style=" not in html
    assert "hx-on" not in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag
    assert "css/dashboard.css" in html


def test_charts_are_accessible_svg_with_title_desc_and_text_values(manager_client, history):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    svgs = re.findall(r'<svg class="chart".*?</svg>', html, flags=re.S)
    assert len(svgs) == 8  # every panel but velocity (tiles) and per rep (a table)
    for svg in svgs:
        assert 'role="img"' in svg
        assert "<title id=" in svg and "<desc id=" in svg
        assert "<text" in svg
    assert "2 waiting, typically 4 days each" in html


def test_each_panel_leads_with_a_plain_sentence_not_a_formula(manager_client, history):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    leads = re.findall(r'<p class="dash-lead">(.*?)</p>', html, flags=re.S)
    assert len(leads) == html.count('class="dash-panel ')
    for lead in leads:
        assert lead.strip() and "=" not in lead and "\N{MULTIPLICATION SIGN}" not in lead
    assert " d = " not in html


def test_every_chart_has_a_table_view(manager_client, history):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    # Velocity's tiles are its chart; the per-rep table has none.
    assert html.count("<summary>Table view</summary>") == 9
    assert html.count('<table class="dash-data">') == len(PANELS)


def test_csv_numbers_match_the_chart(manager_client, history):
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    rows = read_csv(manager_client.get("/reports/dashboard/time.csv", MARCH_QUERY))
    assert rows[0][:3] == ["Stage", "Completed stays", "Median days"]
    lead = rows[1]
    assert lead[:3] == ["Lead in", "3", "4.0"]
    assert f"median {lead[2]} d · p75 {lead[3]} d · {lead[4]} waiting, oldest {lead[6]} d" in html


def test_csv_is_an_attachment_named_after_panel_and_period(manager_client, history):
    response = manager_client.get("/reports/dashboard/funnel.csv", MARCH_QUERY)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        'attachment; filename="funnel-2025-03-01-2025-03-31.csv"'
    )


def test_csv_neutralises_cells_a_spreadsheet_would_run(manager_client, rep, pipeline):
    stage = StageFactory(pipeline=pipeline, name="=HYPERLINK(evil)", position=0)
    make_deal(rep, [(stage, timezone.now() - timedelta(days=1))], title="x")
    rows = read_csv(manager_client.get("/reports/dashboard/pipeline.csv"))
    assert rows[1][0] == "'=HYPERLINK(evil)"


def test_unknown_panel_csv_is_not_found(manager_client, history):
    assert manager_client.get("/reports/dashboard/secrets.csv").status_code == 404


def test_invalid_custom_period_shows_the_error_instead_of_panels(manager_client, history):
    query = {"period": "custom", "date_from": "2025-03-31", "date_to": "2025-03-01"}
    html = manager_client.get(URL, query).content.decode()
    assert "The start date must not be after the end date." in html
    assert 'id="panel-pipeline"' not in html


def test_invalid_filters_refuse_the_csv(manager_client, history):
    response = manager_client.get("/reports/dashboard/funnel.csv", {"period": "custom"})
    assert response.status_code == 400


def test_page_without_any_pipeline_says_so(manager_client):
    assert b"There is no pipeline yet." in manager_client.get(URL).content


# Session, user, the header's notification badge, the default pipeline, the filter menus
# (pipeline twice: the select peeks at its first option; team; owner), the stages, and
# twelve for the panels: bottleneck 3 (funnel and time in stage, shared with their own
# panels, and the stuck deals), per rep 2, velocity 2 (outcomes, cycle times), every
# other panel 1.
PAGE_QUERIES = 21


def test_page_runs_a_fixed_number_of_queries_with_few_deals(
    manager_client, stages, rep, django_assert_num_queries
):
    add_deals(stages, rep, 2)
    with django_assert_num_queries(PAGE_QUERIES):
        manager_client.get(URL)


def test_page_runs_the_same_number_of_queries_with_many_deals(
    manager_client, stages, rep, teammate, django_assert_num_queries
):
    add_deals(stages, rep, 30)
    add_deals(stages, teammate, 30)
    with django_assert_num_queries(PAGE_QUERIES):
        manager_client.get(URL)


def test_page_runs_the_same_number_of_queries_with_the_stays_summary(
    manager_client, stages, rep, django_assert_num_queries
):
    """The summary's mark comes with the stages: reading it costs no query of its own."""
    add_deals(stages, rep, 30)
    stays.refresh(now=timezone.now() - timedelta(days=20))
    assert StageStay.objects.exists()
    with django_assert_num_queries(PAGE_QUERIES):
        manager_client.get(URL)


@pytest.mark.parametrize(("count"), [2, 40])
def test_csv_runs_a_fixed_number_of_queries(
    manager_client, stages, rep, count, django_assert_num_queries
):
    """Session, user, default pipeline, stages, and the panel's own query."""
    add_deals(stages, rep, count)
    with django_assert_num_queries(5):
        manager_client.get("/reports/dashboard/funnel.csv")


def test_page_over_its_time_budget_answers_with_placeholders(manager_client, history, monkeypatch):
    """A page that has spent its budget leaves the remaining panels to requests of their
    own: each placeholder loads its panel (htmx) or links to it (without JavaScript)."""
    from reports.dashboard import views

    monkeypatch.setattr(views, "PAGE_BUDGET_SECONDS", -1.0)
    html = manager_client.get(URL, MARCH_QUERY).content.decode()
    assert '<table class="dash-data">' not in html
    for slug in PANELS:
        assert f'hx-get="/reports/dashboard/panel/{slug}/?' in html


def test_deferred_panel_loads_on_its_own(manager_client, history):
    url = reverse("reports:dashboard_panel", args=["time"])
    fragment = manager_client.get(url, MARCH_QUERY, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert 'id="panel-time"' in body and "<html" not in body
    assert body.count('<table class="dash-data">') == 1
    page = manager_client.get(url, MARCH_QUERY).content.decode()
    assert "<html" in page and page.count('<table class="dash-data">') == 1


def test_deferred_panel_refuses_unknown_panels_and_bad_filters(manager_client, history):
    assert manager_client.get(reverse("reports:dashboard_panel", args=["nope"])).status_code == 404
    bad = {"period": "custom", "date_from": "2025-03-02", "date_to": "2025-03-01"}
    url = reverse("reports:dashboard_panel", args=["time"])
    assert manager_client.get(url, bad).status_code == 400


def test_long_period_flow_page_samples_days_and_csv_keeps_every_day(manager_client, history):
    """Five years (1,826 days, all in the past): the page's table shows at most a year's
    worth of days, always with the last one; the CSV has every day."""
    years = {"period": "custom", "date_from": "2020-04-02", "date_to": "2025-04-01"}
    rows = read_csv(manager_client.get("/reports/dashboard/flow.csv", years))
    assert len(rows) == 1 + 1826
    fragment = manager_client.get(
        reverse("reports:dashboard_panel", args=["flow"]), years, headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.count("<tr>") - 1 <= 367
    assert "2025-04-01" in fragment
