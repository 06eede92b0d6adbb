"""The application's URLs plus the floor views the benchmark measures against."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_POST

from deals.models import Deal
from pipeline_crm.urls import urlpatterns as app_urlpatterns


def hello(request: HttpRequest) -> HttpResponse:
    """The cheapest Django answer: the full middleware stack, no query, no template."""
    return HttpResponse("hello", content_type="text/plain")


@login_required
@require_POST
def touch(request: HttpRequest, pk: int) -> HttpResponse:
    """The authenticated Django floor of a move: the full middleware stack with a
    logged-in session (session and user loaded), then lock one deal row and update it in
    a transaction, as plainly as the ORM allows. Only `updated_at` changes, so the
    integrity check's invariants (version = history count) still hold afterwards."""
    with transaction.atomic():
        Deal.objects.select_for_update().filter(pk=pk).values_list("pk").get()
        Deal.objects.filter(pk=pk).update(updated_at=Now())
    return HttpResponse("touched", content_type="text/plain")


urlpatterns = [
    path("bench/hello/", hello, name="bench_hello"),
    path("bench/touch/<int:pk>/", touch, name="bench_touch"),
    *app_urlpatterns,
]
