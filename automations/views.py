"""Settings > Automations: the rules, their form, recipes, run log and dry run.

Managers and admins only (reps get 404, as for webhooks); a manager sees their own
rules, an admin every rule. Views parse, call one service, render.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import policy
from accounts.models import Team
from automations import labels, recipes, services, spec
from automations.forms import DryRunForm, RuleForm
from automations.models import Rule, RuleRun
from common.errors import DomainError
from common.ids import query_number
from stages.models import Pipeline

RUNS_PAGE = 50


def _manager(request: HttpRequest) -> None:
    if not services.may_manage(request.user):
        raise Http404("Automations are for managers and admins.")


def _described(rules: list[Rule]) -> list[dict]:
    """Each rule in words, with what makes it broken; names loaded once for all rules."""
    refs = spec.References()
    per_rule = {}
    for rule in rules:
        per_rule[rule.pk] = labels.references(rule)
        for kind in ("stages", "pipelines", "users", "teams", "endpoints"):
            getattr(refs, kind).update(getattr(per_rule[rule.pk], kind))
        refs.users.add(rule.owner_id)
    names = labels.Names.load(refs)
    return [_in_words(rule, names, per_rule[rule.pk]) for rule in rules]


def _in_words(rule: Rule, names: labels.Names, refs: spec.References) -> dict:
    problems = names.problems(refs)
    if not rule.owner.is_active:
        problems.append("its owner is deactivated")
    if why := labels.unreadable(rule):
        # Saved by an older schema: shown by kind only, since its values may not read.
        problems.append(f"it no longer reads ({why})")
        return {
            "rule": rule,
            "trigger": str(rule.trigger.get("kind", "?")),
            "conditions": [str(c.get("kind", "?")) for c in rule.conditions.get("items", [])],
            "match": rule.conditions.get("match", "all"),
            "actions": [str(a.get("kind", "?")) for a in rule.actions if isinstance(a, dict)],
            "problems": problems,
        }
    return {
        "rule": rule,
        "trigger": labels.trigger(rule.trigger, names),
        "conditions": [labels.condition(c, names) for c in rule.conditions.get("items", [])],
        "match": rule.conditions.get("match", "all"),
        "actions": [labels.action(a, names) for a in rule.actions],
        "problems": problems,
    }


@login_required
@require_GET
def rule_list(request: HttpRequest) -> HttpResponse:
    _manager(request)
    last = RuleRun.objects.filter(rule=OuterRef("pk")).order_by("-created_at", "-id")
    rules = list(
        services.rules_for(request.user)
        .select_related("owner", "pipeline")
        .annotate(last_status=Subquery(last.values("status")[:1]))
    )
    user = request.user
    teams = Team.objects.all() if policy.acts_on_every_team(user) else user.managed_teams.all()
    context = {
        "rules": _described(rules),
        "recipes": recipes.RECIPES,
        "pipelines": Pipeline.objects.filter(is_archived=False),
        "teams": teams,
    }
    return TemplateResponse(request, "automations/rules.html", context)


def _form_page(request: HttpRequest, form: RuleForm, rule: Rule | None, status: int = 200):
    context = {
        "form": form,
        "rule": rule,
        "triggers": spec.TRIGGERS,
        "examples": [
            (spec.CONDITIONS[k], json.dumps(v)) for k, v in spec.CONDITION_EXAMPLES.items()
        ]
        + [(spec.ACTIONS[k], json.dumps(v)) for k, v in spec.ACTION_EXAMPLES.items()],
    }
    return TemplateResponse(request, "automations/rule_form.html", context, status=status)


def _save(request: HttpRequest, rule: Rule | None) -> HttpResponse:
    form = RuleForm(request.POST)
    if not form.is_valid():
        return _form_page(request, form, rule, status=400)
    try:
        saved = services.save_rule(
            form.to_input(), by=request.user, rule_id=rule.pk if rule else None
        )
    except DomainError as error:
        form.add_error(None, error.message)
        return _form_page(request, form, rule, status=error.status)
    messages.success(request, f"Automation “{saved.name}” saved.")
    return redirect("automations:rules")


@login_required
@require_http_methods(["GET", "POST"])
def rule_new(request: HttpRequest) -> HttpResponse:
    _manager(request)
    if request.method == "POST":
        return _save(request, None)
    return _form_page(request, RuleForm(initial={"is_active": True}), None)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = services.rule_for(rule_id, request.user)
    if request.method == "POST":
        return _save(request, rule)
    return _form_page(request, RuleForm.for_rule(rule), rule)


@login_required
@require_POST
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    active = request.POST.get("is_active") == "1"
    try:
        rule = services.set_active(rule_id, by=request.user, active=active)
    except DomainError as error:
        if error.status == 404:
            raise
        messages.error(request, error.message)
        return redirect("automations:rules")
    messages.success(request, f"“{rule.name}” {'resumed' if active else 'paused'}.")
    return redirect("automations:rules")


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    services.delete_rule(rule_id, by=request.user)
    messages.success(request, "Automation deleted.")
    return redirect("automations:rules")


@login_required
@require_POST
def recipe_add(request: HttpRequest, slug: str) -> HttpResponse:
    _manager(request)
    try:
        rule = recipes.add_recipe(
            slug,
            by=request.user,
            pipeline_id=query_number(request.POST, "pipeline") or 0,
            team_id=query_number(request.POST, "team"),
        )
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("automations:rules")
    messages.success(request, f"Recipe added: “{rule.name}”. Adjust it below if you like.")
    return redirect("automations:rules")


@login_required
@require_GET
def rule_runs(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = services.rule_for(rule_id, request.user)
    runs = Paginator(RuleRun.objects.filter(rule=rule), RUNS_PAGE)
    page = runs.get_page(request.GET.get("page"))
    context = {"rule": rule, "page": page, "described": _described([rule])[0]}
    return TemplateResponse(request, "automations/runs.html", context)


@login_required
@require_GET
def rule_test(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = services.rule_for(rule_id, request.user)
    form = DryRunForm(request.GET or None)
    rows, error = None, ""
    if request.GET and form.is_valid():
        try:
            rows = services.dry_run(
                rule.pk,
                by=request.user,
                deal_id=form.cleaned_data.get("deal"),
                days=form.cleaned_data.get("days") or 30,
            )
        except DomainError as refused:
            if refused.status == 404:
                raise
            error = refused.message
    context = {
        "rule": rule,
        "form": form,
        "rows": rows,
        "error": error,
        "described": _described([rule])[0],
    }
    status = 400 if (request.GET and not form.is_valid()) or error else 200
    return TemplateResponse(request, "automations/test.html", context, status=status)
