"""The application's URLs plus the floor views the benchmark measures against."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from pipeline_crm.urls import urlpatterns as app_urlpatterns


def hello(request: HttpRequest) -> HttpResponse:
    """The cheapest Django answer: the full middleware stack, no query, no template."""
    return HttpResponse("hello", content_type="text/plain")


urlpatterns = [path("bench/hello/", hello, name="bench_hello"), *app_urlpatterns]
