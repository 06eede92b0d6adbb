"""Security tests make hundreds of requests as a few users; the rate limits get a test of
their own (test_hardening.py) and are lifted everywhere else."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def generous_rate_limits(settings):
    settings.RATE_LIMITS = {action: (1_000_000, 60) for action in settings.RATE_LIMITS}
