"""Ready-made rules, added with one click and adjusted afterwards like any rule.

A recipe names stages by what they are usually called ("Demo", "Negotiation"); adding
it to a pipeline finds that stage there (the first open stage whose name contains the
word), or refuses saying which stage it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accounts.models import Team
from automations import services
from common.errors import BadInput
from stages.models import Pipeline, Stage

if TYPE_CHECKING:
    from accounts.models import User
    from automations.models import Rule


@dataclass(frozen=True)
class Recipe:
    slug: str
    name: str
    summary: str
    stage_words: tuple[str, ...] = ()  # the stage it needs, by name, first found wins
    needs_team: bool = False


RECIPES = [
    Recipe(
        "demo_prep",
        "Prepare the demo",
        "When a deal enters Demo, schedule “Prepare demo” for the owner, due the next "
        "business day.",
        stage_words=("demo",),
    ),
    Recipe(
        "won_onboarding",
        "Won: tell the manager, book onboarding",
        "When a deal is won, notify the team's manager and create an onboarding call for "
        "the owner.",
    ),
    Recipe(
        "stalled_negotiation",
        "Stalled in Negotiation",
        "When a deal stalls in Negotiation, notify the team's manager.",
        stage_words=("negotiation", "proposal"),
    ),
    Recipe(
        "round_robin",
        "Round-robin new deals",
        "Hand each new deal to the next active member of a team, in turn.",
        needs_team=True,
    ),
    Recipe(
        "close_date_reminder",
        "Close date in 7 days, nothing planned",
        "Seven days before the expected close date, with no open activity, remind the owner.",
    ),
]
BY_SLUG = {r.slug: r for r in RECIPES}


def _stage(pipeline: Pipeline, words: tuple[str, ...]) -> Stage:
    for word in words:
        stage = (
            Stage.objects.active()
            .open()
            .filter(pipeline=pipeline, name__icontains=word)
            .order_by("position")
            .first()
        )
        if stage is not None:
            return stage
    raise BadInput(f"This recipe needs a stage named “{words[0].title()}” in {pipeline.name}.")


def parts(recipe: Recipe, pipeline: Pipeline, team: Team | None) -> dict[str, Any]:
    """The recipe's trigger, conditions and actions for `pipeline`."""
    if recipe.slug == "demo_prep":
        demo = _stage(pipeline, recipe.stage_words)
        return {
            "trigger": {"kind": "stage_entered", "stage": demo.pk},
            "actions": [
                {
                    "kind": "create_activity",
                    "type": "task",
                    "subject": "Prepare demo",
                    "due_days": 1,
                    "assignee": "owner",
                }
            ],
        }
    if recipe.slug == "won_onboarding":
        return {
            "trigger": {"kind": "deal_won"},
            "actions": [
                {
                    "kind": "notify",
                    "roles": ["team_manager"],
                    "text": "“{deal}” was won.",
                    "email": True,
                },
                {
                    "kind": "create_activity",
                    "type": "call",
                    "subject": "Onboarding call",
                    "due_days": 2,
                    "assignee": "owner",
                },
            ],
        }
    if recipe.slug == "stalled_negotiation":
        stage = _stage(pipeline, recipe.stage_words)
        return {
            "trigger": {"kind": "deal_stalled"},
            "conditions": {
                "match": "all",
                "items": [{"kind": "stage", "op": "in", "ids": [stage.pk]}],
            },
            "actions": [
                {
                    "kind": "notify",
                    "roles": ["team_manager"],
                    "text": f"“{{deal}}” is stalled in {stage.name}.",
                    "email": False,
                }
            ],
        }
    if recipe.slug == "round_robin":
        if team is None:
            raise BadInput("Round-robin: choose a team.")
        return {
            "trigger": {"kind": "deal_created"},
            "conditions": {
                "match": "all",
                "items": [{"kind": "team", "op": "in", "ids": [team.pk]}],
            },
            "actions": [{"kind": "assign_owner", "mode": "round_robin", "team": team.pk}],
        }
    return {
        "trigger": {"kind": "close_date", "days": -7},
        "conditions": {"match": "all", "items": [{"kind": "open_activity", "op": "lacks"}]},
        "actions": [
            {
                "kind": "notify",
                "roles": ["owner"],
                "text": "“{deal}” is expected to close in 7 days and nothing is planned.",
                "email": False,
            }
        ],
    }


def add_recipe(slug: str, *, by: User, pipeline_id: int, team_id: int | None = None) -> Rule:
    """Add a recipe as a rule of `by` for a pipeline (checked like any rule they save)."""
    recipe = BY_SLUG.get(slug)
    if recipe is None:
        raise BadInput("Unknown recipe.")
    pipeline = Pipeline.objects.filter(pk=pipeline_id, is_archived=False).first()
    if pipeline is None:
        raise BadInput("Pipeline: choose an existing pipeline.")
    team = Team.objects.filter(pk=team_id).first() if team_id else None
    found = parts(recipe, pipeline, team)
    return services.save_rule(
        services.RuleInput(
            name=recipe.name,
            trigger=found["trigger"],
            conditions=found.get("conditions", {}),
            actions=found["actions"],
            pipeline_id=pipeline.pk,
        ),
        by=by,
        recipe=slug,
    )
