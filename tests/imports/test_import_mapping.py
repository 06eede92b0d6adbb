"""Guessing columns from the headers of CRM exports, stages from their names, spellings."""

from __future__ import annotations

import pytest

from imports.mapping import (
    DEAL_FIELDS,
    ORGANIZATION_FIELDS,
    PERSON_FIELDS,
    StageChoice,
    correct_product,
    correct_sector,
    guess_columns,
    guess_stage,
    is_sample_data,
)
from imports.parsing import squash
from imports.source import Reader, sniff

PIPEDRIVE = [
    "Deal - ID",
    "Deal - Title",
    "Deal - Value",
    "Deal - Currency of Value",
    "Deal - Owner",
    "Deal - Organization",
    "Deal - Contact person",
    "Deal - Stage",
    "Deal - Status",
    "Deal - Expected close date",
    "Deal - Deal created",
    "Deal - Lost reason",
]
HUBSPOT = [
    "Record ID",
    "Deal Name",
    "Deal Stage",
    "Amount",
    "Close Date",
    "Create Date",
    "Deal owner",
    "Associated Company",
    "Pipeline",
]
SALESFORCE = [
    "Opportunity ID",
    "Opportunity Name",
    "Account Name",
    "Amount",
    "Stage",
    "Close Date",
    "Created Date",
    "Opportunity Owner",
    "Next Step",
    "Probability (%)",
]
SAMPLE = [
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
]


def test_pipedrive_deal_export_headers_are_recognised():
    assert guess_columns(PIPEDRIVE, DEAL_FIELDS) == {
        "external_id": "Deal - ID",
        "title": "Deal - Title",
        "amount": "Deal - Value",
        "currency": "Deal - Currency of Value",
        "owner": "Deal - Owner",
        "organization": "Deal - Organization",
        "person": "Deal - Contact person",
        "stage": "Deal - Stage",
        "status": "Deal - Status",
        "expected_close_date": "Deal - Expected close date",
        "created_date": "Deal - Deal created",
        "lost_reason": "Deal - Lost reason",
    }


def test_hubspot_deal_export_headers_are_recognised():
    guessed = guess_columns(HUBSPOT, DEAL_FIELDS)

    assert guessed == {
        "external_id": "Record ID",
        "title": "Deal Name",
        "stage": "Deal Stage",
        "amount": "Amount",
        "close_date": "Close Date",
        "created_date": "Create Date",
        "owner": "Deal owner",
        "organization": "Associated Company",
    }


def test_salesforce_opportunity_report_headers_are_recognised():
    guessed = guess_columns(SALESFORCE, DEAL_FIELDS)

    assert guessed == {
        "external_id": "Opportunity ID",
        "title": "Opportunity Name",
        "organization": "Account Name",
        "amount": "Amount",
        "stage": "Stage",
        "close_date": "Close Date",
        "created_date": "Created Date",
        "owner": "Opportunity Owner",
        "next_step": "Next Step",
    }


def test_sample_data_set_headers_are_recognised():
    assert guess_columns(SAMPLE, DEAL_FIELDS) == {
        "external_id": "opportunity_id",
        "owner": "sales_agent",
        "product": "product",
        "organization": "account",
        "stage": "deal_stage",
        "engage_date": "engage_date",
        "close_date": "close_date",
        "amount": "close_value",
    }
    assert is_sample_data(SAMPLE)
    assert not is_sample_data(HUBSPOT)


def test_organization_and_person_headers_are_recognised():
    accounts = ["account", "sector", "year_established", "revenue", "employees"]
    assert guess_columns(accounts, ORGANIZATION_FIELDS) == {
        "name": "account",
        "sector": "sector",
        "employees": "employees",
        "revenue": "revenue",
    }
    contacts = ["First Name", "Last Name", "Email", "Phone Number", "Job Title", "Company Name"]
    assert set(guess_columns(contacts, PERSON_FIELDS)) == {
        "first_name",
        "last_name",
        "email",
        "phone",
        "job_title",
        "organization",
    }


def test_a_header_feeds_one_field_only():
    guessed = guess_columns(["Name"], DEAL_FIELDS)

    assert list(guessed.values()) == ["Name"]


STAGES = [
    StageChoice(1, "Lead in", "open", 0),
    StageChoice(2, "Qualified", "open", 1),
    StageChoice(3, "Demo", "open", 2),
    StageChoice(8, "Won", "won", 9),
    StageChoice(9, "Lost", "lost", 10),
]


@pytest.mark.parametrize(
    ("value", "stage"),
    [
        ("demo", 3),
        ("Prospecting", 1),
        ("Engaging", 2),
        ("Closed Won", 8),
        ("closedlost", 9),
        ("Won", 8),
        ("Negotiation/Review", None),
    ],
)
def test_stage_values_map_to_stages_by_name_kind_or_sample_meaning(value, stage):
    assert guess_stage(value, STAGES) == stage


def test_product_spelling_is_corrected_to_a_known_name():
    known = {squash(n): n for n in ["GTX Pro", "GTX Basic"]}

    assert correct_product("GTXPro", known) == "GTX Pro"
    assert correct_product("Widget", known) == "Widget"


def test_misspelt_sector_is_corrected_and_unknown_ones_kept():
    assert correct_sector("technolgy") == "technology"
    assert correct_sector("medical") == "medical"
    assert correct_sector("Space mining") == "Space mining"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("a,b\n1,2\n", ","), ("a;b\n1;2\n", ";"), ("a\tb\n1\t2\n", "\t")],
)
def test_delimiter_is_sniffed_from_the_header(text, delimiter):
    assert sniff(text.encode()).delimiter == delimiter


def test_windows_1252_files_are_read():
    import io

    data = "name\nCafé Müller\n".encode("cp1252")
    dialect = sniff(data)

    rows = list(Reader(io.BytesIO(data), dialect))

    assert (dialect.encoding, rows[0].values["name"]) == ("cp1252", "Café Müller")


def test_byte_order_mark_and_blank_lines_are_skipped():
    import io

    data = "\ufeffname,amount\n\nAcme,5\n".encode()

    rows = list(Reader(io.BytesIO(data), sniff(data)))

    assert [(r.line, r.values) for r in rows] == [(3, {"name": "Acme", "amount": "5"})]
