"""Rules in words, for the rules page, the run log and the dry run.

Names are loaded for every rule shown at once (one query per kind of record), so a page
of rules costs the same whatever the number of rules; a name that is gone reads as such,
which is also how a broken rule is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounts.models import Team, User
from automations import spec
from common.errors import BadInput
from stages.models import Pipeline, Stage
from webhooks.models import Endpoint


@dataclass
class Names:
    stages: dict[int, Stage] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    teams: dict[int, Team] = field(default_factory=dict)
    endpoints: dict[int, Endpoint] = field(default_factory=dict)

    @classmethod
    def load(cls, refs: spec.References) -> Names:
        return cls(
            stages=Stage.objects.select_related("pipeline").in_bulk(refs.stages),
            pipelines=Pipeline.objects.in_bulk(refs.pipelines),
            users=User.objects.in_bulk(refs.users),
            teams=Team.objects.in_bulk(refs.teams),
            endpoints=Endpoint.objects.in_bulk(refs.endpoints),
        )

    def stage(self, pk: int) -> str:
        stage = self.stages.get(pk)
        return f"{stage.pipeline.name}: {stage.name}" if stage else f"(deleted stage #{pk})"

    def user(self, pk: int) -> str:
        user = self.users.get(pk)
        return user.display_name if user else f"(deleted user #{pk})"

    def of(self, kind: str, pk: int) -> str:
        if kind == "stage":
            return self.stage(pk)
        if kind == "owner":
            return self.user(pk)
        found = getattr(self, f"{kind}s").get(pk)
        return str(found) if found else f"(deleted {kind} #{pk})"

    def problems(self, refs: spec.References) -> list[str]:
        """What makes a rule unable to run as written: archived stages, deleted or
        deactivated users, deleted teams or endpoints."""
        found = []
        for pk in sorted(refs.stages):
            stage = self.stages.get(pk)
            if stage is None:
                found.append(f"stage #{pk} was deleted")
            elif stage.is_archived:
                found.append(f"stage {stage.name} is archived")
        for pk in sorted(refs.users):
            user = self.users.get(pk)
            if user is None:
                found.append(f"user #{pk} was deleted")
            elif not user.is_active:
                found.append(f"user {user.display_name} is deactivated")
        for kind in ("pipelines", "teams", "endpoints"):
            for pk in sorted(getattr(refs, kind)):
                if pk not in getattr(self, kind):
                    found.append(f"{kind[:-1]} #{pk} was deleted")
        return found


def unreadable(rule: Any) -> str:
    """Why a saved rule no longer reads (a kind or field removed since it was saved), or
    "" when it does."""
    try:
        spec.clean(rule.trigger, rule.conditions, rule.actions)
    except BadInput as error:
        return error.message
    return ""


def references(rule: Any) -> spec.References:
    """What a saved rule names (its JSON was checked when saved)."""
    try:
        refs = spec.clean(rule.trigger, rule.conditions, rule.actions)[3]
    except BadInput:  # a rule saved by an older schema: it names nothing we can check
        refs = spec.References()
    if rule.pipeline_id:
        refs.pipelines.add(rule.pipeline_id)
    return refs


def trigger(item: dict[str, Any], names: Names) -> str:
    kind = item.get("kind", "")
    if kind == "stage_entered":
        text = f"A deal enters {names.stage(item['stage'])}"
        if item.get("from_stage"):
            text += f" from {names.stage(item['from_stage'])}"
        return text
    if kind == "stage_left":
        return f"A deal leaves {names.stage(item['stage'])}"
    if kind == "deal_stalled" and item.get("stalled_rule"):
        return f"A deal is flagged stalled ({item['stalled_rule'].replace('_', ' ')})"
    if kind == "field_changed":
        return f"The deal's {item['field'].replace('_', ' ')} changes"
    if kind == "close_date":
        days = item["days"]
        when = "before" if days < 0 else "after"
        return f"{abs(days)} day(s) {when} the expected close date"
    if kind == "days_in_stage":
        return f"{item['days']} day(s) after entering the current stage"
    return spec.TRIGGERS.get(kind, kind)


def condition(item: dict[str, Any], names: Names) -> str:
    kind = item["kind"]
    label = spec.CONDITIONS[kind]
    if kind in spec.ID_CONDITIONS:
        listed = ", ".join(names.of(kind, pk) for pk in item["ids"])
        return f"{label} {'is not' if item['op'] == 'not_in' else 'is'} {listed}"
    if kind == "amount":
        currency = f" {item['currency']}" if item.get("currency") else ""
        return f"Amount {spec.COMPARISONS[item['op']]} {item['value']}{currency}"
    if kind == "currency":
        return (
            f"Currency {'is not' if item['op'] == 'not_in' else 'is'} {', '.join(item['values'])}"
        )
    if kind == "organization":
        op = spec.TEXT_OPS.get(item["op"]) or spec.COMPARISONS.get(item["op"], item["op"])
        value = f" {item['value']}" if "value" in item else ""
        return f"Organization {item['field'].replace('_', ' ')} {op}{value}"
    if kind == "contact_role":
        role = item["role"].replace("_", " ")
        return f"{'Has' if item['op'] == 'has' else 'Has no'} contact with role {role}"
    if kind == "open_activity":
        return "Has an open activity" if item["op"] == "has" else "Has no open activity"
    if kind == "days_in_stage":
        return f"Days in stage {spec.COMPARISONS[item['op']]} {item['days']}"
    return label


def action(item: dict[str, Any], names: Names) -> str:
    kind = item["kind"]
    if kind == "create_activity":
        who = {"owner": "the owner", "team_manager": "the team manager"}.get(
            item["assignee"]
        ) or names.user(item.get("user", 0))
        return (
            f"Create {item['type']} “{item['subject']}” for {who}, "
            f"due in {item['due_days']} business day(s)"
        )
    if kind == "notify":
        whom = [spec.NOTIFY_ROLES[r] for r in item["roles"]] + [
            names.user(u) for u in item["users"]
        ]
        mail = " (in-app and e-mail)" if item["email"] else " (in-app)"
        return f"Notify {', '.join(whom)}{mail}: “{item['text']}”"
    if kind == "assign_owner":
        if item["mode"] == "user":
            return f"Assign the owner: {names.user(item['user'])}"
        return f"Assign the owner round-robin in team {names.of('team', item['team'])}"
    if kind == "update_field":
        return f"Set {item['field'].replace('_', ' ')} to {item['value']}"
    if kind == "move_stage":
        return f"Move to {names.stage(item['stage'])} (through the gate)"
    if kind == "send_webhook":
        endpoint = names.endpoints.get(item["endpoint"])
        return f"Send a webhook to {endpoint.url if endpoint else '(deleted endpoint)'}"
    return kind
