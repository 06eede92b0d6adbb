"""Organizations and people: lists, detail pages, forms, and the pickers deal forms use.

Every record is fetched through `accounts.policy`, so one the user may not see answers 404
and ids cannot be probed. Every form works as a plain POST followed by a redirect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from accounts import audit, policy
from accounts.models import AuditKind
from common.errors import BadInput
from common.exports import csv_response
from common.ids import query_number
from contacts import queries, services
from contacts.forms import (
    OrganizationForm,
    PersonForm,
    PickCreateForm,
    PickForm,
    SearchForm,
    SuggestForm,
)
from contacts.models import Organization, Person

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from accounts.models import User

    class AuthedRequest(HttpRequest):
        user: User
        htmx: HtmxDetails
else:
    AuthedRequest = HttpRequest


def visible_organization(request: AuthedRequest, pk: int) -> Organization:
    """The organization if the user may see it; 404 otherwise."""
    return get_object_or_404(policy.organizations(request.user), pk=pk)


def visible_person(request: AuthedRequest, pk: int) -> Person:
    """The person if the user may see them; 404 otherwise."""
    people = queries.with_organization_visibility(policy.people(request.user), request.user)
    return get_object_or_404(people, pk=pk)


def _list_page(
    request: AuthedRequest, rows: Any, template: str, context: dict[str, Any]
) -> HttpResponse:
    """A paginated, searchable list; htmx (search-as-you-type) gets only the results."""
    page = Paginator(rows, queries.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {**context, "page": page}
    partial = (
        request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    )
    response = TemplateResponse(request, f"{template}#results" if partial else template, context)
    # The same URL answers a page or a fragment; caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


# Organizations


@login_required
@require_GET
def organization_list(request: AuthedRequest) -> HttpResponse:
    q = SearchForm(request.GET).query()
    rows = queries.organization_list(request.user, q)
    if request.GET.get("format") == "csv":
        return _export(
            request,
            "organizations.csv",
            ["id", "name", "sector", "employees", "annual_revenue", "website"],
            rows.values_list("pk", "name", "sector", "employees", "annual_revenue", "website"),
        )
    return _list_page(request, rows, "contacts/organizations.html", {"q": q})


def _export(request: AuthedRequest, name: str, header: list[str], rows: Any) -> HttpResponse:
    """The list as CSV: same visibility and search as the page, formulas neutralised."""
    audit.record(AuditKind.EXPORT, user=request.user, request=request, detail=name)
    return csv_response(name, header, rows.iterator(chunk_size=2000))


@login_required
@require_GET
def organization_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    organization = visible_organization(request, pk)
    context = {
        "organization": organization,
        "deals": queries.organization_deals(organization, request.user),
        "people": queries.organization_people(organization, request.user),
        "activities": queries.organization_activities(organization, request.user),
        "limit": queries.DETAIL_ROWS,
    }
    return TemplateResponse(request, "contacts/organization_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def organization_create(request: AuthedRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organization = services.create_organization(by=request.user, **form.cleaned_data)
        messages.success(request, f"Created {organization.name}.")
        return redirect("contacts:organization", organization.pk)
    status = 422 if form.is_bound else 200
    context = {"form": form, "organization": None}
    return TemplateResponse(request, "contacts/organization_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def organization_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    organization = visible_organization(request, pk)
    form = OrganizationForm(request.POST or None, instance=organization)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if changes:
            services.update_organization(organization, by=request.user, **changes)
        messages.success(request, f"Saved {form.cleaned_data['name']}.")
        return redirect("contacts:organization", organization.pk)
    status = 422 if form.is_bound else 200
    context = {"form": form, "organization": organization}
    return TemplateResponse(request, "contacts/organization_form.html", context, status=status)


# People


@login_required
@require_GET
def person_list(request: AuthedRequest) -> HttpResponse:
    q = SearchForm(request.GET).query()
    rows = queries.person_list(request.user, q)
    if request.GET.get("format") == "csv":
        return _export(
            request,
            "people.csv",
            ["id", "name", "email", "phone", "job_title", "organization"],
            rows.values_list("pk", "name", "email", "phone", "job_title", "organization__name"),
        )
    return _list_page(request, rows, "contacts/people.html", {"q": q})


@login_required
@require_GET
def person_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    person = visible_person(request, pk)
    context = {
        "person": person,
        "deals": queries.person_deals(person, request.user),
        "activities": queries.person_activities(person, request.user),
        "limit": queries.DETAIL_ROWS,
    }
    return TemplateResponse(request, "contacts/person_detail.html", context)


def _person_form_page(
    request: AuthedRequest,
    form: PersonForm,
    person: Person | None,
    chosen: Organization | None = None,
) -> HttpResponse:
    """The form; the organization picker shows `chosen`, or after a failed submission the
    organization submitted if it was valid (`form.instance` is not to be trusted then)."""
    if form.is_bound:
        chosen = form.cleaned_data.get("organization")
    context = {"form": form, "person": person, "chosen_organization": chosen}
    status = 422 if form.is_bound else 200
    return TemplateResponse(request, "contacts/person_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def person_create(request: AuthedRequest) -> HttpResponse:
    form = PersonForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        person = services.create_person(by=request.user, **form.cleaned_data)
        messages.success(request, f"Created {person.name}.")
        return redirect("contacts:person", person.pk)
    # "Add a person here" on an organization's page arrives with ?organization=<id>.
    at = query_number(request.GET, "organization")
    chosen = policy.organizations(request.user).filter(pk=at).first() if at else None
    return _person_form_page(request, form, None, chosen)


@login_required
@require_http_methods(["GET", "POST"])
def person_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    person = visible_person(request, pk)
    form = PersonForm(request.POST or None, instance=person, user=request.user)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if changes:
            services.update_person(person, by=request.user, **changes)
        messages.success(request, f"Saved {form.cleaned_data['name']}.")
        return redirect("contacts:person", person.pk)
    return _person_form_page(request, form, person, person.organization)


# Pickers: search-as-you-type fields that fill a hidden input in a host form.

PICKERS: dict[str, dict[str, Any]] = {
    "organization": {
        "model": Organization,
        "search": queries.pick_organizations,
        "create": services.create_organization,
        "label": "Organization",
    },
    "person": {
        "model": Person,
        "search": queries.pick_people,
        "create": services.create_person,
        "label": "Person",
    },
}


def _picker(
    request: AuthedRequest, kind: str, field: str, *, status: int = 200, **context: Any
) -> HttpResponse:
    context = {"kind": kind, "field": field, "label": PICKERS[kind]["label"], **context}
    return TemplateResponse(request, "contacts/picker.html#picker", context, status=status)


def _pick(request: AuthedRequest, kind: str) -> HttpResponse:
    """GET ?q= answers the options; ?chosen=<id> the picker holding that choice; ?clear=1
    the empty picker. POST new_name= creates the record and answers it chosen (201)."""
    picker = PICKERS[kind]
    if request.method == "POST":
        create = PickCreateForm(request.POST)
        if not create.is_valid():
            field = create.cleaned_data.get("field") or kind
            q = request.POST.get("new_name", "")[:200]
            return _picker(request, kind, field, q=q, create_form=create, status=422)
        row = picker["create"](by=request.user, name=create.cleaned_data["new_name"])
        field = create.cleaned_data["field"]
        return _picker(request, kind, field, chosen=row, focus=True, status=201)
    form = PickForm(request.GET)
    if not form.is_valid():
        return HttpResponse("That picker request was not understood.", status=400)
    field, q, chosen_id = (form.cleaned_data[k] for k in ("field", "q", "chosen"))
    if chosen_id is not None:
        chosen = get_object_or_404(
            policy.customer_records(request.user, picker["model"]), pk=chosen_id
        )
        return _picker(request, kind, field, chosen=chosen, focus=True)
    if request.GET.get("clear"):
        return _picker(request, kind, field, focus=True)
    options = picker["search"](request.user, q) if q else []
    exact = any(option.name.casefold() == q.casefold() for option in options)
    context = {
        "kind": kind,
        "field": field,
        "q": q,
        "options": options,
        "offer_create": bool(q) and not exact,
    }
    return TemplateResponse(request, "contacts/picker.html#options", context)


@login_required
@require_http_methods(["GET", "POST"])
def organization_pick(request: AuthedRequest) -> HttpResponse:
    return _pick(request, "organization")


@login_required
@require_http_methods(["GET", "POST"])
def person_pick(request: AuthedRequest) -> HttpResponse:
    return _pick(request, "person")


@login_required
@require_GET
def suggest(request: AuthedRequest, kind: str) -> HttpResponse:
    """Options for a deal form's typed organization/contact name (search as you type)."""
    form = SuggestForm({"name": request.GET.get(f"{kind}_name", "")})
    if not form.is_valid():
        raise BadInput("A name to search for cannot contain a NUL character.")
    typed = form.cleaned_data["name"]
    model = Organization if kind == "organization" else Person
    names: list[str] = []
    if len(typed) >= 2:
        rows = queries.best_first(
            policy.customer_records(request.user, model).matching(typed), typed
        )
        names = list(rows.values_list("name", flat=True)[:8])
    return TemplateResponse(request, "contacts/suggest.html", {"names": names})
