"""Every configuration page and endpoint costs a fixed number of queries, few rows or many.

Counts include the request's own overhead: the session, the user, and the unread count
of the header's notification bell (one query each).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from stages.models import ConfigChange
from tests.factories import CriterionFactory, DealFactory, PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(params=[1, 20], ids=["few", "many"])
def data(request, admin_user, pipeline, stages):
    """The Sales pipeline with a criterion on Proposal, grown by `n` stages, criteria,
    deals, pipelines and audit rows."""
    n = request.param
    criterion = CriterionFactory(stage=stages["proposal"], kind="checklist", label="Budget")
    CriterionFactory(stage=stages["proposal"], kind="no_skip")
    for i in range(n):
        extra = StageFactory(pipeline=pipeline, name=f"Extra {i}", position=20 + i)
        CriterionFactory(stage=extra, kind="checklist", label=f"Item {i}")
        CriterionFactory(stage=stages["proposal"], kind="checklist", label=f"Check {i}")
        DealFactory(stage=extra, owner=admin_user)  # one owner: hashing passwords is slow
        PipelineFactory(name=f"Pipeline {i}")
    ConfigChange.objects.bulk_create(
        ConfigChange(
            by=admin_user,
            action="updated",
            subject_type="stage",
            subject_id=stages["demo"].pk,
            pipeline=pipeline,
            summary=f"change {i}",
        )
        for i in range(3 * n)
    )
    return {"criterion": criterion, **stages}


def stage_form(stage, **changes):
    fields = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
    return {**{f: getattr(stage, f) for f in fields}, **changes}


# ------------------------------------------------------------------------------ pages


def test_pipelines_page_queries(admin_client, data, django_assert_num_queries):
    # session, user, pipelines with counts, bell
    with django_assert_num_queries(4):
        admin_client.get(reverse("stages:pipelines"))


def test_pipeline_page_queries(admin_client, data, pipeline, django_assert_num_queries):
    # session, user, pipeline, bell, stages with usage, their criteria
    with django_assert_num_queries(6):
        admin_client.get(reverse("stages:pipeline", args=[pipeline.pk]))


def test_stage_page_queries(admin_client, data, django_assert_num_queries):
    # session, user, stage with pipeline, bell, criteria
    with django_assert_num_queries(5):
        admin_client.get(reverse("stages:stage", args=[data["proposal"].pk]))


def test_new_stage_page_queries(admin_client, data, pipeline, django_assert_num_queries):
    with django_assert_num_queries(4):
        admin_client.get(reverse("stages:new_stage", args=[pipeline.pk]))


def test_delete_stage_page_queries(admin_client, data, django_assert_num_queries):
    # session, user, stage with pipeline, usage, bell
    with django_assert_num_queries(5):
        admin_client.get(reverse("stages:delete_stage", args=[data["demo"].pk]))


def test_new_criterion_page_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:new_criterion", args=[data["proposal"].pk])
    with django_assert_num_queries(4):
        admin_client.get(url, {"kind": "checklist"})


def test_new_criterion_fragment_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:new_criterion", args=[data["proposal"].pk])
    with django_assert_num_queries(3):  # no page around it, so no bell
        admin_client.get(url, {"kind": "checklist"}, headers=HTMX)


def test_edit_criterion_page_queries(admin_client, data, django_assert_num_queries):
    with django_assert_num_queries(4):
        admin_client.get(reverse("stages:criterion", args=[data["criterion"].pk]))


def test_audit_page_queries(admin_client, data, django_assert_num_queries):
    # session, user, count, bell, pipelines for the filter, one page of changes
    with django_assert_num_queries(6):
        admin_client.get(reverse("stages:audit"))


# ------------------------------------------------------------------------- endpoints
# Writes run in a savepoint (SAVEPOINT and RELEASE are counted) and lock what they change.


def test_move_stage_with_htmx_queries(admin_client, data, django_assert_num_queries):
    # session, user, stage; savepoint, lock pipeline, stages, update, audit, release;
    # re-render: stages with usage, criteria
    with django_assert_num_queries(11):
        admin_client.post(
            reverse("stages:move_stage", args=[data["demo"].pk]), {"direction": "up"}, headers=HTMX
        )


def test_reorder_stages_queries(admin_client, data, pipeline, django_assert_num_queries):
    order = list(pipeline.stages.order_by("-position").values_list("pk", flat=True))
    with django_assert_num_queries(11):
        admin_client.post(
            reverse("stages:reorder_stages", args=[pipeline.pk]), {"order": order}, headers=HTMX
        )


def test_move_pipeline_with_htmx_queries(admin_client, data, pipeline, django_assert_num_queries):
    # session, user, pipeline; savepoint, lock pipelines, update, audit, release; re-render
    with django_assert_num_queries(9):
        admin_client.post(
            reverse("stages:move_pipeline", args=[pipeline.pk]),
            {"direction": "down"},
            headers=HTMX,
        )


def test_archive_stage_with_htmx_queries(admin_client, data, django_assert_num_queries):
    # session, user, stage; savepoint, lock, deals in it, other open stages, update, audit,
    # release; re-render: stages with usage, criteria
    with django_assert_num_queries(12):
        admin_client.post(
            reverse("stages:archive_stage", args=[data["qualified"].pk]), headers=HTMX
        )


def test_move_criterion_with_htmx_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:move_criterion", args=[data["criterion"].pk])
    with django_assert_num_queries(10):
        admin_client.post(url, {"direction": "down"}, headers=HTMX)


def test_remove_criterion_with_htmx_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:remove_criterion", args=[data["criterion"].pk])
    with django_assert_num_queries(12):
        admin_client.post(url, headers=HTMX)


def test_save_stage_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:stage", args=[data["demo"].pk])
    with django_assert_num_queries(9):
        admin_client.post(url, stage_form(data["demo"], name="Product demo"))


def test_add_stage_queries(admin_client, data, pipeline, django_assert_num_queries):
    url = reverse("stages:new_stage", args=[pipeline.pk])
    with django_assert_num_queries(11):
        admin_client.post(url, stage_form(data["demo"], name="Negotiation"))


def test_add_criterion_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:new_criterion", args=[data["proposal"].pk])
    with django_assert_num_queries(12):
        admin_client.post(url, {"kind": "checklist", "label": "Legal approved"})


def test_edit_criterion_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:criterion", args=[data["criterion"].pk])
    with django_assert_num_queries(12):
        admin_client.post(url, {"label": "Budget signed off"})


def test_delete_stage_queries(admin_client, data, django_assert_num_queries):
    url = reverse("stages:delete_stage", args=[data["qualified"].pk])
    # ...plus Django's delete collector: one query per relation that protects or cascades
    with django_assert_num_queries(18):
        admin_client.post(url)


def test_create_pipeline_queries(admin_client, data, django_assert_num_queries):
    with django_assert_num_queries(9):
        admin_client.post(reverse("stages:create_pipeline"), {"name": "Enterprise"})


def test_rename_pipeline_queries(admin_client, data, pipeline, django_assert_num_queries):
    url = reverse("stages:rename_pipeline", args=[pipeline.pk])
    with django_assert_num_queries(9):
        admin_client.post(url, {"name": "Direct sales"})
