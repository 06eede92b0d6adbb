"""Shared pieces of the API's views: versions from If-Match, cursor pages, 404 lookups."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from api.serializers import ProblemSerializer


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = "Send the version you last read, as If-Match or as `version`."
    default_code = "precondition-required"


ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


def expected_version(request: Any, body_version: int | None) -> int:
    """The version the client last read: If-Match (the ETag) or `version` in the body."""
    header = request.headers.get("If-Match")
    if header is not None:
        match = ETAG.match(header)
        if match is None:
            raise exceptions.ValidationError({"If-Match": ['Expected an ETag such as "3".']})
        return int(match.group(1))
    if body_version is not None:
        return body_version
    raise PreconditionRequired()


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def get_or_404[T: Model](rows: QuerySet[T], pk: Any) -> T:
    """One row among `rows` (already narrowed to what the user may see), else 404."""
    if not isinstance(pk, int) or not 0 < pk < 2**63:
        raise exceptions.NotFound("Not found.")  # no id the database could not even hold
    found = rows.filter(pk=pk).first()
    if found is None:
        raise exceptions.NotFound("Not found.")
    return found


class Cursor(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )


def paged(serializer: type[Serializer]) -> Serializer:
    """The schema of a cursor page of `serializer` rows."""
    name = serializer.__name__.removesuffix("Serializer")
    return inline_serializer(
        name=f"{name}Page",
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def problems(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Schema entries for refusals: RFC 9457 problem details, as application/problem+json."""
    return {
        (code, "application/problem+json"): OpenApiResponse(ProblemSerializer) for code in codes
    }


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description='The version last read, as returned in ETag (e.g. "3"); or send `version`.',
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe POST: the same key and body within 24 h answer the same.",
)

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="From a page's `next` or `previous` link"),
    OpenApiParameter("page_size", int, description="1-200 rows, 50 by default"),
]


class UnknownPath(APIView):
    """Any other path under /api/v1/: a problem+json 404, like the API's other refusals."""

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.NotFound("No such API endpoint.")

    post = put = patch = delete = get
