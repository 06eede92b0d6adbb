"""Idempotency-Key on POST: a retried request gets the first answer, not a second write.

The same key with the same method, path and body within settings.IDEMPOTENCY_WINDOW
replays the stored answer (with `Idempotent-Replayed: true`); the same key with another
request is refused (422). The handler and the stored answer commit together, so a crash
between the write and the record cannot let a retry write twice.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from api.models import IdempotentAnswer
from api.problems import problem

HEADER = "Idempotency-Key"
# Answers that depend on the moment rather than on the request are not remembered.
NOT_REMEMBERED = {429, 503}


def _fingerprint(request: Any) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), request.body):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(handler)
    def wrapper(view: Any, request: Any, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not key or len(key) > 255 or not key.isascii():
            return problem(400, "Idempotency-Key must be 1-255 ASCII characters.", kind="invalid")
        fingerprint = _fingerprint(request)
        since = timezone.now() - settings.IDEMPOTENCY_WINDOW
        mine = IdempotentAnswer.objects.filter(user=request.user, key=key)
        earlier = mine.filter(created_at__gt=since).first()
        if earlier is not None:
            if earlier.body_hash != fingerprint:
                return problem(
                    422,
                    "This Idempotency-Key was used for a different request.",
                    kind="idempotency-key-reused",
                )
            replay = Response(earlier.body, status=earlier.status, headers=earlier.headers)
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            with transaction.atomic():
                mine.filter(created_at__lte=since).delete()
                try:
                    response = handler(view, request, *args, **kwargs)
                except Exception as error:
                    response = view.handle_exception(error)
                if response.status_code < 500 and response.status_code not in NOT_REMEMBERED:
                    kept = {
                        name: response[name]
                        for name in ("Location", "ETag", "Content-Type")
                        if response.has_header(name)
                    }
                    IdempotentAnswer.objects.create(
                        user=request.user,
                        key=key,
                        body_hash=fingerprint,
                        status=response.status_code,
                        body=response.data,
                        headers=kept,
                    )
        except IntegrityError:
            return problem(
                409, "A request with this Idempotency-Key is in progress.", kind="idempotency"
            )
        return response

    return wrapper
