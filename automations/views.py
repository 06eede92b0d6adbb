"""Settings > Automations: the rules, their form, recipes, run log and dry run.

Managers and admins only (reps get 404, as for webhooks); a manager sees their own
rules, an admin every rule. Views parse, call one service, render.
"""

from __future__ import annotations

import json
import re

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
from automations import editor, labels, recipes, services, spec
from automations.forms import DryRunForm, RuleForm, starting_rows
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


def _editor(request: HttpRequest, rule: Rule | None) -> HttpResponse:
    """The rule editor: shown (GET), stepped (an editor_op: add, remove or reorder a row,
    or show a new kind's fields, saving nothing) or saved (spec judges; a refusal lands
    beside its field and changes nothing)."""
    owner = rule.owner if rule else request.user
    choices = editor.Choices.for_owner(owner)
    if request.method == "GET":
        form = RuleForm(initial=RuleForm.initial_for(rule) if rule else {}, choices=choices)
        return _page(request, rule, form, starting_rows(rule).forms(choices, bound=False))
    rows = editor.Rows.from_post(request.POST)
    op = request.POST.get("editor_op", "")
    if op:
        focus = rows.step(op)
        form = RuleForm(initial=request.POST.dict(), choices=choices)
        form.initial["is_active"] = "is_active" in request.POST
        return _page(request, rule, form, rows.forms(choices, bound=False), focus=focus)
    form = RuleForm(request.POST, choices=choices)
    row_forms = rows.forms(choices, bound=True)
    valid = form.is_valid() & all([f.is_valid() for part in row_forms.values() for f in part])
    if not valid:
        return _page(request, rule, form, row_forms, status=400)
    items = {part: [f.item() for f in forms_] for part, forms_ in row_forms.items()}
    try:
        saved = services.save_rule(
            form.to_input(items), by=request.user, rule_id=rule.pk if rule else None
        )
    except DomainError as error:
        if error.status == 404:
            raise
        if error.message.startswith("Name:"):
            form.add_error("name", error.message)
        elif not editor.place_error(error, row_forms, form):
            form.add_error(None, error.message)
        return _page(request, rule, form, row_forms, status=error.status)
    messages.success(request, f"Automation “{saved.name}” saved.")
    return redirect("automations:rules")


def _page(
    request: HttpRequest,
    rule: Rule | None,
    form: RuleForm,
    rows: dict[str, list[editor.RowForm]],
    *,
    status: int = 200,
    focus: str = "",
) -> HttpResponse:
    _wire(request, form, rows, focus)
    context = {
        "form": form,
        "rule": rule,
        "conditions": rows["c"],
        "actions": rows["a"],
        "max_items": spec.MAX_ITEMS,
        "focus": focus,
        "saved_json": json.dumps(
            {"trigger": rule.trigger, "conditions": rule.conditions, "actions": rule.actions},
            indent=2,
        )
        if rule
        else "",
    }
    template = "automations/rule_form.html"
    if request.htmx and request.method == "POST" and status == 200:
        template += "#editor"
    return TemplateResponse(request, template, context, status=status)


def _wire(
    request: HttpRequest, form: RuleForm, rows: dict[str, list[editor.RowForm]], focus: str
) -> None:
    """Kind pickers show their kind's fields when changed (htmx), and the focus goes back
    where the keyboard was after an editor step (the new row, the moved button)."""
    refresh = {
        "hx-post": request.path,
        "hx-trigger": "change",
        "hx-vals": json.dumps({"editor_op": "refresh"}),
    }
    form.fields["trigger_kind"].widget.attrs.update(refresh)
    for part in rows.values():
        for row in part:
            row.fields["kind"].widget.attrs.update(refresh)
            row.focus = ""
    if found := re.fullmatch(r"(c|a)-(\d+)-kind", focus):
        rows[found[1]][int(found[2])].fields["kind"].widget.attrs["autofocus"] = True
    elif found := re.fullmatch(r"(up|down)-(c|a)-(\d+)", focus):
        part, n = rows[found[2]], int(found[3])
        part[n].focus = "down" if n == 0 else "up" if n == len(part) - 1 else found[1]


@login_required
@require_http_methods(["GET", "POST"])
def rule_new(request: HttpRequest) -> HttpResponse:
    _manager(request)
    return _editor(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    return _editor(request, services.rule_for(rule_id, request.user))


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
