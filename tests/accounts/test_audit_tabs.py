"""One Audit page for admins, with security and configuration as its two tabs."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.parametrize(
    ("name", "current"), [("accounts:audit", "Security"), ("stages:audit", "Configuration")]
)
def test_audit_is_one_page_with_two_tabs(client_for, admin_user, name, current):
    html = client_for(admin_user).get(reverse(name)).content.decode()
    assert html.count("<h1>Audit</h1>") == 1
    tabs = html.split('aria-label="Audit"', 1)[1].split("</nav>", 1)[0]
    assert f'href="{reverse("accounts:audit")}"' in tabs
    assert f'href="{reverse("stages:audit")}"' in tabs
    assert f'aria-current="page">{current}</a>' in tabs
