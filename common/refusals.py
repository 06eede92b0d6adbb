"""Domain errors become web answers here, and only here.

`RefusalMiddleware` answers any `DomainError` a view lets through: the status, message
and headers come from `common.errors.describe`; an htmx request gets the message as
text (app.js shows it as a flash), a full page the refusal page. A view whose refusals
need more than a message (the board re-renders the columns so a dragged card snaps
back; the deal page shows the error in place) names a presenter with `@presents`,
which gets the same `Refusal` and only decides the look.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from common.errors import DomainError, Refusal, describe

log = logging.getLogger(__name__)

Presenter = Callable[..., HttpResponse | None]


def answer(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    """The plain answer to a refusal, for htmx and full-page requests alike."""
    if getattr(request, "htmx", False):
        response: HttpResponse = HttpResponse(
            refusal.message, status=refusal.status, content_type="text/plain; charset=utf-8"
        )
    else:
        response = TemplateResponse(
            request, "refusal.html", {"refusal": refusal}, status=refusal.status
        )
    for name, value in refusal.headers.items():
        response[name] = value
    return response


class RefusalMiddleware:
    """Answer a domain error that reached the top of a view with its meaning (404, 403,
    409, 422, 400, 429), never a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError):
            return None
        refusal = describe(exception)
        log.info("refused %s %s: %s %s", request.method, request.path, refusal.status, exception)
        response = answer(request, refusal)
        if isinstance(response, TemplateResponse):
            response.render()  # process_exception answers are not rendered by the handler
        return response


View = Callable[..., HttpResponse]


def presents(presenter: Presenter) -> Callable[[View], View]:
    """Let `presenter(request, error, refusal, **view_kwargs)` shape a view's refusals.

    The presenter may return None to leave the answer to `RefusalMiddleware`.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as error:
                response = presenter(request, error, describe(error), *args, **kwargs)
                if response is None:
                    raise
                for name, value in describe(error).headers.items():
                    response[name] = value
                return response

        return wrapper

    return decorate


def flash_and_return(to: Callable[..., str]) -> Presenter:
    """A presenter for a button whose refusal is best told where the user was: a plain
    POST goes back to `to(request, **view_kwargs)` with the message as a flash; htmx (and
    a 404) get the plain answer from `RefusalMiddleware`."""

    def present(
        request: HttpRequest, error: DomainError, refusal: Refusal, *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        if getattr(request, "htmx", False) or error.status == 404:
            return None
        messages.error(request, refusal.message)
        return redirect(to(request, *args, **kwargs))

    return present
