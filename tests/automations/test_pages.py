"""Settings > Automations: who may see it, the recipes, the form's refusals, the run log
and the dry run; query counts that do not grow with rules or runs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from automations import recipes
from automations.models import Rule, RuleRun
from deals import services
from deals.models import Activity
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db

DEMO_ACTION = [
    {
        "kind": "create_activity",
        "type": "task",
        "subject": "Prep",
        "due_days": 1,
        "assignee": "owner",
    }
]


def form_data(stages, action=None, **overrides):
    """The editor's fields for a rule with one action (`a-0-<key>`)."""
    data = {
        "name": "Prep",
        "pipeline": "",
        "is_active": "on",
        "trigger_kind": "stage_entered",
        "trigger_stage": stages["demo"].pk,
        "match": "all",
    }
    data |= {f"a-0-{key}": value for key, value in (action or DEMO_ACTION[0]).items()}
    return data | overrides


def test_reps_get_404_on_every_page(rep, client_for, make_rule, stages):
    rule = make_rule({"kind": "deal_won"}, DEMO_ACTION)
    client = client_for(rep)
    for url in [
        reverse("automations:rules"),
        reverse("automations:new"),
        reverse("automations:edit", args=[rule.pk]),
        reverse("automations:runs", args=[rule.pk]),
        reverse("automations:test", args=[rule.pk]),
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("automations:toggle", args=[rule.pk])).status_code == 404
    assert client.post(reverse("automations:recipe_add", args=["demo_prep"])).status_code == 404


def test_a_manager_does_not_see_an_admins_rule(manager, client_for, make_rule):
    rule = make_rule({"kind": "deal_won"}, DEMO_ACTION, name="Admin only")
    client = client_for(manager)
    assert "Admin only" not in client.get(reverse("automations:rules")).text
    assert client.get(reverse("automations:runs", args=[rule.pk])).status_code == 404
    assert client.post(reverse("automations:delete", args=[rule.pk])).status_code == 404
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_admin_creates_a_rule_with_the_form(admin_user, client_for, stages):
    response = client_for(admin_user).post(reverse("automations:new"), form_data(stages))
    assert response.status_code == 302
    rule = Rule.objects.get()
    assert rule.trigger == {"kind": "stage_entered", "stage": stages["demo"].pk}
    assert rule.owner == admin_user


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"a-0-due_days": "61"}, "between 0 and 60"),
        ({"a-0-subject": "x" * 201}, "too long"),
        ({"trigger_kind": "close_date", "trigger_days": "9999"}, "between -365 and 365"),
        ({"a-0-due_days": "soon"}, "Enter a whole number"),
        ({"name": "n" * 101}, "at most 100"),
    ],
)
def test_the_form_refuses_bad_input_with_a_message_and_saves_nothing(
    admin_user, client_for, stages, change, message
):
    response = client_for(admin_user).post(reverse("automations:new"), form_data(stages, **change))
    assert response.status_code == 400
    assert message in response.text
    assert not Rule.objects.exists()


def test_a_visible_loop_is_refused_at_save(admin_user, client_for, stages, make_rule):
    make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        [{"kind": "move_stage", "stage": stages["proposal"].pk}],
        name="Demo to proposal",
    )
    data = form_data(
        stages,
        name="Proposal to demo",
        action={"kind": "move_stage", "stage": stages["demo"].pk},
        trigger_stage=stages["proposal"].pk,
    )
    response = client_for(admin_user).post(reverse("automations:new"), data)
    assert response.status_code == 400
    assert "loop" in response.text
    assert Rule.objects.count() == 1


def test_each_recipe_is_added_with_one_click(admin_user, client_for, stages, pipeline, team, rep):
    stages["proposal"].name = "Negotiation"
    stages["proposal"].save()
    client = client_for(admin_user)
    for recipe in recipes.RECIPES:
        data = {"pipeline": pipeline.pk, "team": team.pk}
        response = client.post(reverse("automations:recipe_add", args=[recipe.slug]), data)
        assert response.status_code == 302, recipe.slug
    assert Rule.objects.filter(is_active=True).count() == len(recipes.RECIPES) == 5


def test_the_list_flags_a_rule_whose_stage_was_archived(admin_user, client_for, stages, make_rule):
    make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, DEMO_ACTION)
    stages["demo"].is_archived = True
    stages["demo"].save()
    page = client_for(admin_user).get(reverse("automations:rules")).text
    assert "data-broken" in page and "stage Demo is archived" in page


def test_the_list_costs_the_same_with_more_rules(
    admin_user, client_for, stages, make_rule, django_assert_num_queries
):
    client = client_for(admin_user)
    make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, DEMO_ACTION)
    client.get(reverse("automations:rules"))
    with django_assert_num_queries(QUERIES_LIST) as few:
        client.get(reverse("automations:rules"))
    for n in range(5):
        make_rule({"kind": "stage_left", "stage": stages["lead"].pk}, DEMO_ACTION, name=f"R{n}")
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(reverse("automations:rules"))


QUERIES_LIST = 8


def test_the_run_log_shows_each_actions_outcome(
    admin_user, rep, client_for, stages, make_rule, committed, django_assert_num_queries
):
    rule = make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, DEMO_ACTION)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    client = client_for(admin_user)
    url = reverse("automations:runs", args=[rule.pk])
    with django_assert_num_queries(QUERIES_RUNS):
        page = client.get(url).text
    assert "Created task “Prep”" in page and "deal.moved" in page


QUERIES_RUNS = 8


def test_the_dry_run_against_a_deal_writes_nothing(admin_user, rep, client_for, stages, make_rule):
    rule = make_rule({"kind": "deal_won"}, DEMO_ACTION)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    page = client_for(admin_user).get(
        reverse("automations:test", args=[rule.pk]), {"deal": deal.pk}
    )
    assert page.status_code == 200
    assert "Would create task “Prep”" in page.text
    assert not Activity.objects.exists() and not RuleRun.objects.exists()


def test_the_dry_run_over_past_events_costs_the_same_with_more_events(
    admin_user, rep, client_for, stages, make_rule, django_assert_num_queries
):
    rule = make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        DEMO_ACTION,
        conditions={"match": "all", "items": [{"kind": "amount", "op": "gte", "value": "1"}]},
    )
    client = client_for(admin_user)
    url = reverse("automations:test", args=[rule.pk])

    def moved(n):
        for _ in range(n):
            deal = DealFactory(owner=rep, stage=stages["qualified"])
            services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)

    moved(1)
    client.get(url, {"days": 30})
    with django_assert_num_queries(QUERIES_DRY_RUN):
        page = client.get(url, {"days": 30}).text
    assert page.count("Create task “Prep”") == 1
    moved(4)
    with django_assert_num_queries(QUERIES_DRY_RUN):
        page = client.get(url, {"days": 30}).text
    assert page.count("Create task “Prep”") == 5


QUERIES_DRY_RUN = 11


def test_the_list_flags_a_rule_naming_a_removed_field(admin_user, client_for, make_rule):
    make_rule({"kind": "deal_won"}, [{"kind": "update_field", "field": "budget", "value": "1"}])
    page = client_for(admin_user).get(reverse("automations:rules")).text
    assert "data-broken" in page and "budget" in page
