from __future__ import annotations

from django.http import HttpResponse


def board(request):
    return HttpResponse("")
