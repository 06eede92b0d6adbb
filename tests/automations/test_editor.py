"""The point-and-click rule editor: every condition and action kind round-trips through
the page (saved JSON → form → posted back → the same JSON, valid for the spec), rows are
added, removed and reordered without saving, bad input is refused beside its field with
nothing changed, and the page costs the same whatever the rule holds."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from automations import spec
from automations.models import Rule
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db

TASK = {
    "kind": "create_activity",
    "type": "task",
    "subject": "Prep",
    "note": "",
    "due_days": 1,
    "assignee": "owner",
}


class FormValues(HTMLParser):
    """What a browser would post for the rule form as rendered: text values, chosen
    options, ticked boxes (submit buttons left out: they are editor steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "rule-form":
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in {"submit", "button"}:
            if a.get("type") in {"checkbox", "radio"}:
                if "checked" in a:
                    self.values.append((name, a.get("value", "on")))
            else:
                self.values.append((name, a.get("value") or ""))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None
        elif tag == "form":
            self._in_form = False


def posted(page: str, **changes: str) -> dict[str, list[str]]:
    parser = FormValues()
    parser.feed(page)
    data: dict[str, list[str]] = {}
    for name, value in parser.values:
        data.setdefault(name, []).append(value)
    for name, value in changes.items():
        data[name.replace("__", "-")] = [value]
    return data


@pytest.fixture
def endpoint(admin_user):
    return Endpoint.objects.create(
        owner=admin_user, url="https://example.com/hook", events=["deal.*"], secret="x" * 50
    )


@pytest.fixture
def kinds(stages, pipeline, team, rep, endpoint):
    """One condition and one action of every kind, naming real records."""
    conditions = {
        "pipeline": {"kind": "pipeline", "op": "in", "ids": [pipeline.pk]},
        "stage": {"kind": "stage", "op": "not_in", "ids": [stages["lead"].pk, stages["demo"].pk]},
        "owner": {"kind": "owner", "op": "in", "ids": [rep.pk]},
        "team": {"kind": "team", "op": "in", "ids": [team.pk]},
        "amount": {"kind": "amount", "op": "gte", "value": "10000.00", "currency": "EUR"},
        "currency": {"kind": "currency", "op": "in", "values": ["EUR", "USD"]},
        "organization": {
            "kind": "organization",
            "field": "employees",
            "op": "gt",
            "value": "500.00",
        },
        "contact_role": {"kind": "contact_role", "op": "lacks", "role": "decision_maker"},
        "open_activity": {"kind": "open_activity", "op": "lacks"},
        "days_in_stage": {"kind": "days_in_stage", "op": "gte", "days": 10},
    }
    actions = {
        "create_activity": {
            **TASK,
            "type": "call",
            "note": "Ask about budget",
            "assignee": "user",
            "user": rep.pk,
        },
        "notify": {
            "kind": "notify",
            "roles": ["owner", "team_manager"],
            "users": [rep.pk],
            "text": "{deal} needs a look",
            "email": True,
        },
        "assign_owner": {"kind": "assign_owner", "mode": "round_robin", "team": team.pk},
        "update_field": {"kind": "update_field", "field": "expected_close_date", "value": "+30"},
        "move_stage": {"kind": "move_stage", "stage": stages["proposal"].pk},
        "send_webhook": {"kind": "send_webhook", "endpoint": endpoint.pk},
    }
    assert set(conditions) == set(spec.CONDITIONS) and set(actions) == set(spec.ACTIONS)
    return conditions, actions


def _round_trip(client, rule):
    url = reverse("automations:edit", args=[rule.pk])
    before = (rule.trigger, rule.conditions, rule.actions)
    response = client.post(url, posted(client.get(url).text))
    assert response.status_code == 302, response.text
    rule.refresh_from_db()
    assert (rule.trigger, rule.conditions, rule.actions) == before


@pytest.mark.parametrize("kind", sorted(spec.CONDITIONS))
def test_each_condition_kind_round_trips_through_the_editor(
    admin_user, client_for, stages, make_rule, kinds, kind
):
    trigger, conds, acts, _ = spec.clean(
        {"kind": "deal_won"}, {"match": "any", "items": [kinds[0][kind]]}, [TASK]
    )
    _round_trip(client_for(admin_user), make_rule(trigger, acts, conditions=conds))


@pytest.mark.parametrize("kind", sorted(spec.ACTIONS))
def test_each_action_kind_round_trips_through_the_editor(
    admin_user, client_for, stages, make_rule, kinds, kind
):
    trigger, conds, acts, _ = spec.clean({"kind": "deal_won"}, {}, [kinds[1][kind], TASK])
    _round_trip(client_for(admin_user), make_rule(trigger, acts, conditions=conds))


@pytest.mark.parametrize(
    "trigger",
    [
        {"kind": "stage_entered", "stage": "demo", "from_stage": "qualified"},
        {"kind": "stage_left", "stage": "demo"},
        {"kind": "deal_stalled", "stalled_rule": "no_next_step"},
        {"kind": "field_changed", "field": "amount"},
        {"kind": "close_date", "days": -7},
        {"kind": "days_in_stage", "days": 14},
        {"kind": "activity_overdue"},
    ],
)
def test_each_trigger_round_trips_through_the_editor(
    admin_user, client_for, stages, make_rule, trigger
):
    named = {k: stages[v].pk if k.endswith("stage") else v for k, v in trigger.items()}
    trigger, conds, acts, _ = spec.clean(named, {}, [TASK])
    _round_trip(client_for(admin_user), make_rule(trigger, acts, conditions=conds))


def test_every_recipe_round_trips_through_the_editor(
    admin_user, client_for, stages, pipeline, team, rep
):
    from automations import recipes

    stages["proposal"].name = "Negotiation"
    stages["proposal"].save()
    client = client_for(admin_user)
    for recipe in recipes.RECIPES:
        rule = recipes.add_recipe(
            recipe.slug, by=admin_user, pipeline_id=pipeline.pk, team_id=team.pk
        )
        _round_trip(client, rule)


def test_an_admin_builds_a_rule_by_picking_without_writing_json(
    admin_user, client_for, stages, rep
):
    client = client_for(admin_user)
    url = reverse("automations:new")
    page = client.get(url).text
    assert "{&quot;kind" not in page and "JSON" not in page
    data = posted(page, name="Demo prep", trigger_kind="stage_entered")
    # Choosing the trigger shows its options (htmx swaps the editor alone).
    step = client.post(url, data | {"editor_op": "refresh"}, headers={"HX-Request": "true"})
    assert step.status_code == 200 and 'id="rule-editor"' in step.text
    assert "<html" not in step.text and 'name="trigger_stage"' in step.text
    data = _merge(data, step.text) | {"trigger_stage": [str(stages["demo"].pk)]}
    # A condition row: amount at least 1000.
    step = client.post(url, data | {"editor_op": "add:c"}, headers={"HX-Request": "true"})
    data = _merge(data, step.text) | {"c-0-kind": ["amount"]}
    step = client.post(url, data | {"editor_op": "refresh"}, headers={"HX-Request": "true"})
    data = _merge(data, step.text) | {"c-0-op": ["gte"], "c-0-value": ["1000"]}
    data |= {"a-0-subject": ["Prepare demo"], "a-0-due_days": ["1"]}
    assert not Rule.objects.exists()
    assert client.post(url, data).status_code == 302
    rule = Rule.objects.get()
    assert rule.trigger == {"kind": "stage_entered", "stage": stages["demo"].pk}
    assert rule.conditions == {
        "match": "all",
        "items": [{"kind": "amount", "op": "gte", "value": "1000.00"}],
    }
    assert rule.actions == [{**TASK, "subject": "Prepare demo"}]


def _merge(data, editor_html):
    """The editor's fields as re-rendered, over the rest of the form."""
    fresh = posted(f'<form id="rule-form">{editor_html}</form>')
    kept = {k: v for k, v in data.items() if not k.startswith(("a-", "c-", "trigger_", "match"))}
    return kept | fresh


def test_rows_are_added_removed_and_reordered_saving_nothing(
    admin_user, client_for, make_rule, stages, team
):
    notify = {"kind": "notify", "roles": ["owner"], "users": [], "text": "Hi", "email": False}
    rule = make_rule({"kind": "deal_won"}, [TASK, notify])
    client = client_for(admin_user)
    url = reverse("automations:edit", args=[rule.pk])
    data = posted(client.get(url).text)
    moved = client.post(url, data | {"editor_op": "up:a:1"})
    assert moved.status_code == 200 and "<html" in moved.text  # without JS: the whole page
    order = posted(moved.text)
    assert order["a-0-kind"] == ["notify"] and order["a-1-kind"] == ["create_activity"]
    assert order["a-1-subject"] == ["Prep"]  # the values travel with their row
    removed = client.post(url, order | {"editor_op": "remove:a:0"}, headers={"HX-Request": "1"})
    left = posted(f'<form id="rule-form">{removed.text}</form>')
    assert left["a-0-kind"] == ["create_activity"] and "a-1-kind" not in left
    assert (
        'id="add-a" class="cfg-secondary" hx-post' in removed.text and "autofocus" in removed.text
    )
    rule.refresh_from_db()
    assert rule.actions == [TASK, notify]


def _field_error(page: str, field_id: str) -> str:
    start = page.index(f'id="{field_id}_error"')
    return page[start : page.index("</p>", start)]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"a__0__due_days": "61"}, "id_a-0-due_days", "between 0 and 60"),
        ({"a__0__due_days": "-1"}, "id_a-0-due_days", "between 0 and 60"),
        ({"a__0__subject": "x" * 201}, "id_a-0-subject", "too long (201 characters, at most 200)"),
        ({"a__0__note": "x" * 1001}, "id_a-0-note", "at most 1000"),
        ({"a__0__subject": ""}, "id_a-0-subject", "required"),
        (
            {"trigger_kind": "close_date", "trigger_days": "9999"},
            "id_trigger_days",
            "between -365 and 365",
        ),
        ({"a__0__assignee": "user", "a__0__user": "999999"}, "id_a-0-user", "valid choice"),
        ({"a__0__type": "telepathy"}, "id_a-0-type", "valid choice"),
        ({"name": "n" * 101}, "id_name", "at most 100"),
    ],
)
def test_bad_input_is_refused_beside_its_field_and_changes_nothing(
    admin_user, client_for, make_rule, stages, change, field, message
):
    rule = make_rule({"kind": "deal_won"}, [TASK], name="Kept")
    client = client_for(admin_user)
    url = reverse("automations:edit", args=[rule.pk])
    response = client.post(url, posted(client.get(url).text, **change))
    assert response.status_code == 400
    assert message in _field_error(response.text, field)
    rule.refresh_from_db()
    assert rule.name == "Kept" and rule.actions == [TASK] and rule.trigger == {"kind": "deal_won"}


def test_a_manager_picks_only_their_teams_people_and_teams(
    manager, client_for, stages, rep, outsider, team, other_team
):
    client = client_for(manager)
    url = reverse("automations:new")
    page = client.get(url).text
    data = posted(page, name="Mine", trigger_kind="deal_won", a__0__subject="Call")
    assert f'value="{rep.pk}"' in page and f'value="{outsider.pk}"' not in page
    refused = [
        ({"a-0-assignee": ["user"], "a-0-user": [str(outsider.pk)]}, "id_a-0-user"),
        (
            {
                "a-0-kind": ["assign_owner"],
                "a-0-mode": ["round_robin"],
                "a-0-team": [str(other_team.pk)],
            },
            "id_a-0-team",
        ),
        ({"a-0-kind": ["move_stage"], "a-0-stage": ["999999"]}, "id_a-0-stage"),
        ({"c-0-kind": ["owner"], "c-0-op": ["in"], "c-0-ids": [str(outsider.pk)]}, "id_c-0-ids"),
    ]
    for change, field in refused:
        response = client.post(url, data | change)
        assert response.status_code == 400, change
        assert "valid choice" in _field_error(response.text, field), change
    assert not Rule.objects.exists()
    round_robin = {
        "a-0-kind": ["assign_owner"],
        "a-0-mode": ["round_robin"],
        "a-0-team": [str(team.pk)],
    }
    assert client.post(url, data | round_robin).status_code == 302
    assert Rule.objects.get().actions == [
        {"kind": "assign_owner", "mode": "round_robin", "team": team.pk}
    ]


def test_the_editor_costs_the_same_whatever_the_rule_holds(
    admin_user, client_for, make_rule, stages, kinds, django_assert_num_queries
):
    small = make_rule({"kind": "deal_won"}, [TASK], name="Small")
    trigger, conds, acts, _ = spec.clean(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        {"match": "all", "items": list(kinds[0].values())},
        list(kinds[1].values()),
    )
    big = make_rule(trigger, acts, conditions=conds, name="Big")
    client = client_for(admin_user)
    client.get(reverse("automations:edit", args=[small.pk]))
    for rule in (small, big):
        with django_assert_num_queries(QUERIES_EDITOR):
            page = client.get(reverse("automations:edit", args=[rule.pk])).text
    assert page.count('class="rule-row"') == len(conds["items"]) + len(acts)


QUERIES_EDITOR = 9


def _out_of_reach(outsider, other_team, endpoint):
    """Each place a manager's rule can name another team's user or team, or an endpoint
    not theirs: (conditions, actions, where, key, message)."""
    task = {"kind": "create_activity", "type": "call", "subject": "Call", "due_days": 1}
    return [
        ([{"kind": "owner", "ids": [outsider.pk]}], [task], "Condition 1", "ids", "Owner: "),
        ([{"kind": "team", "ids": [other_team.pk]}], [task], "Condition 1", "ids", "Owner's team"),
        ([], [task | {"assignee": "user", "user": outsider.pk}], "Action 1", "user", "Named user"),
        (
            [],
            [task, {"kind": "notify", "roles": [], "users": [outsider.pk], "text": "hi"}],
            "Action 2",
            "users",
            "Users: ",
        ),
        (
            [],
            [{"kind": "assign_owner", "mode": "round_robin", "team": other_team.pk}],
            "Action 1",
            "team",
            "Round-robin",
        ),
        (
            [],
            [{"kind": "send_webhook", "endpoint": endpoint.pk}],
            "Action 1",
            "endpoint",
            "Webhook endpoint",
        ),
    ]


def test_the_service_refuses_a_managers_out_of_reach_ids_naming_row_and_field(
    manager, outsider, other_team, endpoint
):
    from automations import services
    from common.errors import BadInput

    for conds, acts, where, key, message in _out_of_reach(outsider, other_team, endpoint):
        data = services.RuleInput(
            name="Reach",
            trigger={"kind": "deal_won"},
            conditions={"match": "all", "items": conds},
            actions=acts,
        )
        with pytest.raises(BadInput) as refused:
            services.save_rule(data, by=manager)
        error = refused.value
        assert (error.where, error.key) == (where, key), message
        assert str(error.message).startswith(f"{where}: {message}")
    assert not Rule.objects.exists()


def test_an_out_of_reach_id_past_the_form_is_refused_beside_its_field(
    manager, admin_user, client_for, stages, other_team, monkeypatch
):
    from automations import editor

    # A picker offering more than the owner may name (as a page built before a team
    # change would): the service's check is what refuses.
    everything = editor.Choices.for_owner(admin_user)
    monkeypatch.setattr(editor.Choices, "for_owner", classmethod(lambda cls, owner: everything))
    client = client_for(manager)
    url = reverse("automations:new")
    data = posted(client.get(url).text, name="Mine", trigger_kind="deal_won", a__0__subject="Call")
    team_condition = {"c-0-kind": ["team"], "c-0-op": ["in"], "c-0-ids": [str(other_team.pk)]}
    response = client.post(url, data | team_condition)
    assert response.status_code == 400
    beside = _field_error(response.text, "id_c-0-ids")
    assert "Owner&#x27;s team: choose teams you manage." in beside
    assert "Round-robin" not in response.text
    assert not Rule.objects.exists()
