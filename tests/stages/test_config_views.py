"""Configuration screens: plain POST + redirect, htmx in-place updates, messages, escaping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from stages.models import ConfigChange, EntryCriterion, Pipeline, Stage
from tests.factories import CriterionFactory, DealFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def stage_data(stage, **changes):
    fields = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
    return {**{f: getattr(stage, f) for f in fields}, **changes}


def order_of(pipeline):
    return list(pipeline.stages.order_by("position", "id").values_list("name", flat=True))


# ------------------------------------------------------------------ row buttons, drag


def test_move_button_with_htmx_rerenders_only_the_stage_list(admin_client, stages, pipeline):
    url = reverse("stages:move_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, {"direction": "up"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="stage-list"')
    assert "<html" not in html
    assert html.index(">Demo<") < html.index(">Qualified<")
    assert order_of(pipeline)[:3] == ["Lead in", "Demo", "Qualified"]


def test_move_button_without_javascript_redirects_back_to_the_row(admin_client, stages, pipeline):
    url = reverse("stages:move_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, {"direction": "down"})
    assert response.status_code == 302
    assert (
        response.url
        == reverse("stages:pipeline", args=[pipeline.pk]) + f"#stage-{stages['demo'].pk}"
    )
    assert order_of(pipeline)[2:4] == ["Proposal", "Demo"]


def test_refused_archive_with_htmx_answers_422_with_the_reason(admin_client, stages):
    DealFactory(stage=stages["demo"])
    url = reverse("stages:archive_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, headers=HTMX)
    assert response.status_code == 422
    assert "Demo still holds 1 deal;" in response.content.decode()


def test_refused_archive_without_javascript_flashes_the_reason(admin_client, stages):
    DealFactory(stage=stages["demo"])
    url = reverse("stages:archive_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, follow=True)
    assert "Demo still holds 1 deal;" in response.content.decode()
    stages["demo"].refresh_from_db()
    assert not stages["demo"].is_archived


def test_archive_button_on_the_stage_page_returns_to_the_stage_page(admin_client, stages):
    url = reverse("stages:archive_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, {"next": "own"})
    assert response.url == reverse("stages:stage", args=[stages["demo"].pk])


def test_drag_reorder_saves_the_posted_order(admin_client, stages, pipeline):
    order = [stages[k].pk for k in ("proposal", "lead", "qualified", "demo", "won", "lost")]
    url = reverse("stages:reorder_stages", args=[pipeline.pk])
    response = admin_client.post(url, {"order": order}, headers=HTMX)
    assert response.status_code == 200
    assert order_of(pipeline)[0] == "Proposal"


def test_drag_reorder_of_a_stale_list_answers_409_and_shows_the_list_again(
    admin_client, stages, pipeline
):
    order = [stages[k].pk for k in ("proposal", "lead", "qualified", "demo")]
    url = reverse("stages:reorder_stages", args=[pipeline.pk])
    response = admin_client.post(url, {"order": order}, headers=HTMX)
    assert response.status_code == 409
    assert "The list changed meanwhile" in response.content.decode()
    assert order_of(pipeline)[0] == "Lead in"


def test_drag_reorder_with_garbage_answers_400(admin_client, stages, pipeline):
    url = reverse("stages:reorder_stages", args=[pipeline.pk])
    response = admin_client.post(url, {"order": ["x"]}, headers=HTMX)
    assert response.status_code == 400
    assert "The new order could not be read." in response.content.decode()


def test_pipeline_move_buttons_reorder_the_pipelines(admin_client, pipeline):
    second = Pipeline.objects.create(name="Partners", position=1)
    admin_client.post(reverse("stages:move_pipeline", args=[second.pk]), {"direction": "up"})
    assert list(Pipeline.objects.values_list("name", flat=True)) == ["Partners", "Sales"]


def test_edge_move_buttons_are_disabled(admin_client, stages, pipeline):
    html = admin_client.get(reverse("stages:pipeline", args=[pipeline.pk])).content.decode()
    assert f'id="stage-{stages["lead"].pk}-up" class="cfg-icon" disabled' in html
    assert f'id="stage-{stages["lost"].pk}-down" class="cfg-icon" disabled' in html
    assert f'id="stage-{stages["demo"].pk}-up" class="cfg-icon">' in html


# --------------------------------------------------------------------------- pipelines


def test_creating_a_pipeline_redirects_to_its_page(admin_client, db):
    response = admin_client.post(reverse("stages:create_pipeline"), {"name": "Enterprise"})
    created = Pipeline.objects.get(name="Enterprise")
    assert response.url == reverse("stages:pipeline", args=[created.pk])


def test_creating_a_pipeline_with_a_taken_name_shows_why(admin_client, pipeline):
    response = admin_client.post(reverse("stages:create_pipeline"), {"name": "SALES"})
    assert response.status_code == 422
    assert "There is already a pipeline named SALES." in response.content.decode()


def test_renaming_a_pipeline_with_a_blank_name_shows_why(admin_client, pipeline):
    url = reverse("stages:rename_pipeline", args=[pipeline.pk])
    response = admin_client.post(url, {"name": ""})
    assert response.status_code == 422
    assert "Give the pipeline a name." in response.content.decode()


# ------------------------------------------------------------------------------ stages


def test_adding_a_stage_redirects_to_its_row(admin_client, pipeline, stages):
    data = {"name": "Negotiation", "kind": "open", "probability": 60}
    data |= {"forecast_category": "commit", "rotting_days": 10, "guidance": "Agree terms."}
    response = admin_client.post(reverse("stages:new_stage", args=[pipeline.pk]), data)
    created = Stage.objects.get(name="Negotiation")
    assert response.url.endswith(f"#stage-{created.pk}")
    assert (created.probability, created.forecast_category) == (60, "commit")


def test_saving_the_stage_form_updates_the_stage(admin_client, stages):
    url = reverse("stages:stage", args=[stages["demo"].pk])
    guidance = "Show the product.\r\nAgree on next steps."
    response = admin_client.post(url, stage_data(stages["demo"], guidance=guidance))
    assert response.status_code == 302
    stages["demo"].refresh_from_db()
    assert stages["demo"].guidance == "Show the product.\nAgree on next steps."


def test_stage_form_refuses_a_probability_over_100_with_a_message(admin_client, stages):
    url = reverse("stages:stage", args=[stages["demo"].pk])
    response = admin_client.post(url, stage_data(stages["demo"], probability=150))
    assert response.status_code == 422
    assert "The win probability must be between 0 and 100." in response.content.decode()


def test_stage_form_shows_a_refusal_from_the_rules(admin_client, stages):
    DealFactory(stage=stages["demo"])
    url = reverse("stages:stage", args=[stages["demo"].pk])
    response = admin_client.post(url, stage_data(stages["demo"], kind="lost"))
    assert response.status_code == 422
    assert "Demo holds 1 deal, so its kind cannot change" in response.content.decode()


def test_stage_page_shows_guidance_with_its_line_breaks_in_the_form(admin_client, stages):
    Stage.objects.filter(pk=stages["demo"].pk).update(guidance="Step one\nStep two")
    html = admin_client.get(reverse("stages:stage", args=[stages["demo"].pk])).content.decode()
    assert "Step one\nStep two</textarea>" in html


def test_pipeline_page_offers_delete_only_for_stages_without_deals_or_history(
    admin_client, stages, pipeline
):
    DealFactory(stage=stages["demo"])
    html = admin_client.get(reverse("stages:pipeline", args=[pipeline.pk])).content.decode()
    assert reverse("stages:delete_stage", args=[stages["qualified"].pk]) in html
    assert reverse("stages:delete_stage", args=[stages["demo"].pk]) not in html


def test_delete_page_explains_why_a_stage_with_deals_cannot_go(admin_client, stages):
    DealFactory(stage=stages["demo"])
    html = admin_client.get(
        reverse("stages:delete_stage", args=[stages["demo"].pk])
    ).content.decode()
    assert "Demo cannot be deleted: 1 deal is in it" in html
    assert "Delete stage</button>" not in html


def test_deleting_an_unused_stage_redirects_to_the_pipeline(admin_client, stages, pipeline):
    response = admin_client.post(reverse("stages:delete_stage", args=[stages["qualified"].pk]))
    assert response.url == reverse("stages:pipeline", args=[pipeline.pk])
    assert not Stage.objects.filter(pk=stages["qualified"].pk).exists()


def test_deleting_a_stage_with_history_is_refused_with_a_message(admin_client, stages):
    DealFactory(stage=stages["demo"])
    url = reverse("stages:delete_stage", args=[stages["demo"].pk])
    response = admin_client.post(url, follow=True)
    assert "holds deals or stage history, so it cannot be deleted" in response.content.decode()
    assert Stage.objects.filter(pk=stages["demo"].pk).exists()


# ---------------------------------------------------------------------------- criteria

KIND_INPUTS = {
    "field_required": {"field_name"},
    "amount_at_least": {"amount"},
    "activity_done": {"activity_type"},
    "contact_role": {"contact_role"},
    "checklist": {"label"},
    "no_skip": set(),
    "min_days_in_previous": {"days"},
}
ALL_INPUTS = {"field_name", "amount", "activity_type", "contact_role", "label", "days"}


@pytest.mark.parametrize("kind", list(KIND_INPUTS))
def test_criterion_form_shows_only_its_kinds_fields(admin_client, stages, kind):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    html = admin_client.get(url, {"kind": kind}).content.decode()
    shown = {name for name in ALL_INPUTS if f'name="{name}"' in html}
    assert shown == KIND_INPUTS[kind]


def test_choosing_a_kind_with_htmx_loads_just_its_form(admin_client, stages):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    html = admin_client.get(url, {"kind": "checklist"}, headers=HTMX).content.decode()
    assert html.lstrip().startswith("<form")
    assert "<html" not in html
    assert 'name="label"' in html


def test_choosing_no_kind_with_htmx_clears_the_form(admin_client, stages):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    response = admin_client.get(url, {"kind": ""}, headers=HTMX)
    assert response.content == b""


def test_adding_a_criterion_redirects_to_the_stages_criteria(admin_client, stages):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    response = admin_client.post(url, {"kind": "checklist", "label": "Budget approved"})
    assert response.url == reverse("stages:stage", args=[stages["proposal"].pk]) + "#criteria"
    assert EntryCriterion.objects.get().requirement == "Confirm: Budget approved"


def test_a_negative_amount_is_refused_with_a_message(admin_client, stages):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    response = admin_client.post(url, {"kind": "amount_at_least", "amount": "-5"})
    assert response.status_code == 422
    assert "The minimum amount must be 0 or more." in response.content.decode()
    assert not EntryCriterion.objects.exists()


def test_zero_days_is_refused_with_a_message(admin_client, stages):
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    response = admin_client.post(url, {"kind": "min_days_in_previous", "days": "0"})
    assert response.status_code == 422
    assert "Enter a number of days from 1 to 3650." in response.content.decode()


def test_a_duplicate_criterion_is_refused_with_a_message(admin_client, stages):
    CriterionFactory(stage=stages["proposal"], kind="no_skip")
    url = reverse("stages:new_criterion", args=[stages["proposal"].pk])
    response = admin_client.post(url, {"kind": "no_skip"})
    assert response.status_code == 422
    assert "Proposal already requires" in response.content.decode()


def test_editing_a_criterion_saves_it(admin_client, stages):
    criterion = CriterionFactory(
        stage=stages["proposal"], kind="amount_at_least", amount=Decimal("10")
    )
    url = reverse("stages:criterion", args=[criterion.pk])
    assert 'value="10.00"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"amount": "2500"})
    assert response.status_code == 302
    criterion.refresh_from_db()
    assert criterion.amount == Decimal("2500")


def test_remove_button_with_htmx_rerenders_the_criteria(admin_client, stages):
    criterion = CriterionFactory(stage=stages["proposal"], kind="checklist", label="Budget")
    url = reverse("stages:remove_criterion", args=[criterion.pk])
    html = admin_client.post(url, headers=HTMX).content.decode()
    assert html.lstrip().startswith('<section id="criteria"')
    assert "No entry criteria" in html
    assert (
        ConfigChange.objects.get().summary == "removed criterion 'Confirm: Budget' from Proposal"
    )


def test_criterion_move_buttons_reorder_the_list(admin_client, stages):
    a = CriterionFactory(stage=stages["proposal"], kind="no_skip", position=0)
    b = CriterionFactory(stage=stages["proposal"], kind="checklist", label="B", position=1)
    admin_client.post(reverse("stages:move_criterion", args=[a.pk]), {"direction": "down"})
    assert list(stages["proposal"].criteria.values_list("pk", flat=True)) == [b.pk, a.pk]


# ---------------------------------------------------------------------------- escaping

NASTY = "<script>alert('x')</script>"


def test_html_in_stage_names_is_escaped_on_every_page(admin_client, stages, pipeline):
    Stage.objects.filter(pk=stages["demo"].pk).update(name=NASTY)
    CriterionFactory(stage=stages["demo"], kind="checklist", label=NASTY)
    pages = [
        reverse("stages:pipelines"),
        reverse("stages:pipeline", args=[pipeline.pk]),
        reverse("stages:stage", args=[stages["demo"].pk]),
        reverse("stages:delete_stage", args=[stages["demo"].pk]),
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert "<script>alert" not in html, url
    html = admin_client.get(pages[1]).content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_html_in_pipeline_names_is_escaped(admin_client, pipeline):
    Pipeline.objects.filter(pk=pipeline.pk).update(name=NASTY)
    html = admin_client.get(reverse("stages:pipelines")).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
