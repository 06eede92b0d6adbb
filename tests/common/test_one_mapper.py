"""One mapper: the configuration (stages), import and contact refusals are domain errors,
answered through common.errors.describe for htmx, full-page and API requests alike; no
view catches them by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.urls import reverse

from common.errors import DomainError, describe
from contacts.services import ContactError, ContactNotFound
from imports import services as import_services
from imports.undo import undo_import
from stages.services import ConfigError, StaleOrder
from tests.imports.imports_support import csv_of, import_root, run, start  # noqa: F401

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigError("Taken."), 422),
        (StaleOrder(), 409),
        (import_services.ImportRefused("Unreadable."), 400),
        (import_services.NotAllowed("Import not found."), 404),
        (ContactError("Unknown fields: x."), 400),
        (ContactNotFound("Gone."), 404),
    ],
)
def test_each_family_is_a_domain_error_with_its_status(error, status):
    assert isinstance(error, DomainError)
    refusal = describe(error)
    assert (refusal.status, refusal.message) == (status, error.message)


# --- stages: the settings pages and the API answer the same ------------------------------


def duplicate_pipeline(client, pipeline, **headers):
    return client.post(reverse("stages:create_pipeline"), {"name": pipeline.name}, **headers)


def test_config_refusal_on_a_form_page_full_and_htmx(admin_client, pipeline):
    for headers in ({}, {"headers": HTMX}):
        response = duplicate_pipeline(admin_client, pipeline, **headers)
        assert response.status_code == 422
        assert f"There is already a pipeline named {pipeline.name}." in response.text


def test_stale_order_is_409_with_htmx_and_a_flash_without(admin_client, stages, pipeline):
    url = reverse("stages:reorder_stages", args=[pipeline.pk])
    stale = {"order": [stages[k].pk for k in ("proposal", "lead", "qualified", "demo")]}
    assert admin_client.post(url, stale, headers=HTMX).status_code == 409
    response = admin_client.post(url, stale, follow=True)
    assert "The list changed meanwhile" in response.text


# --- imports: a flash where the user was, or the plain answer for htmx --------------------


@pytest.mark.usefixtures("import_root")
def test_import_refusal_full_page_goes_back_with_the_reason(client_for, admin_user, stages):
    job = start(admin_user, csv_of("A1,rep,GTX,Acme,Won,2016-10-20,2017-03-01,1"))
    job.mapping = {**job.mapping, "columns": {}}
    job.save(update_fields=["mapping"])
    response = client_for(admin_user).post(reverse("import_confirm", args=[job.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("import_preview", args=[job.pk])
    assert "Choose a column for:" in response.text


@pytest.mark.usefixtures("import_root")
def test_import_refusal_with_htmx_is_400_with_the_message(client_for, admin_user, stages):
    job = start(admin_user, csv_of("A1,rep,GTX,Acme,Won,2016-10-20,2017-03-01,1"))
    response = client_for(admin_user).post(reverse("import_undo", args=[job.pk]), headers=HTMX)
    assert response.status_code == 400
    assert response.text == "Only a finished import can be undone."


@pytest.mark.usefixtures("import_root")
def test_someone_elses_import_is_404_on_every_door(client_for, admin_user, manager, stages):
    job = run(admin_user, csv_of("A1,rep,GTX,Acme,Won,2016-10-20,2017-03-01,1"))
    with pytest.raises(import_services.NotAllowed):
        undo_import(job, by=manager)
    response = client_for(manager).post(reverse("import_undo", args=[job.pk]), headers=HTMX)
    assert response.status_code == 404


# --- no view catches them by hand -----------------------------------------------------------

FAMILIES = {"ConfigError", "StaleOrder", "ImportRefused", "ContactError", "ContactNotFound"}


def caught_by_hand(path: Path) -> list[str]:
    """`except` clauses naming one of the families (bare or as module.Name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = {
                n.id if isinstance(n, ast.Name) else n.attr
                for n in ast.walk(node.type)
                if isinstance(n, ast.Name | ast.Attribute)
            }
            if names & FAMILIES:
                found.append(f"{path.name}:{node.lineno}")
    return found


def view_modules() -> list[Path]:
    return sorted(
        [*ROOT.glob("*/views.py"), *ROOT.glob("*/views/*.py"), *ROOT.glob("*/*/views.py")]
    )


def test_no_view_catches_a_refusal_family_by_hand():
    modules = view_modules()
    assert {"stages/views.py", "imports/views.py", "contacts/views.py"} <= {
        p.relative_to(ROOT).as_posix() for p in modules
    }
    assert [hit for path in modules for hit in caught_by_hand(path)] == []


def test_the_check_sees_a_family_caught_by_hand(tmp_path):
    module = tmp_path / "views.py"
    module.write_text(
        "def v(request):\n"
        "    try:\n        pass\n"
        "    except services.ImportRefused:\n        pass\n"
        "    except (KeyError, ConfigError):\n        pass\n"
    )
    assert len(caught_by_hand(module)) == 2
