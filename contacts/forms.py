from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.validators import RegexValidator

from accounts import policy
from contacts.models import Organization, Person

if TYPE_CHECKING:
    from accounts.models import User

NAME_ERRORS = {
    "required": "Enter a name.",
    "max_length": "Keep the name to %(limit_value)d characters or fewer (it has %(show_value)d).",
}


class OrganizationForm(forms.ModelForm):
    website = forms.URLField(
        required=False,
        max_length=200,
        assume_scheme="https",
        error_messages={"invalid": "Enter a web address, like example.com."},
    )
    annual_revenue = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=16,
        decimal_places=2,
        label="Annual revenue",
        error_messages={"min_value": "Annual revenue cannot be negative."},
    )

    class Meta:
        model = Organization
        fields = ["name", "sector", "employees", "annual_revenue", "website"]
        error_messages = {
            "name": NAME_ERRORS,
            "employees": {"min_value": "The number of employees cannot be negative."},
        }


class PersonForm(forms.ModelForm):
    """A person; the organization is chosen with the organization picker (a hidden id)."""

    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "Choose an organization from the list."},
    )

    class Meta:
        model = Person
        fields = ["name", "email", "phone", "job_title", "organization"]
        error_messages = {
            "name": NAME_ERRORS,
            "email": {"invalid": "Enter a valid e-mail address, like name@example.com."},
        }

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only organizations the user can see may be chosen; others read as "not in the list".
        # The current one stays valid even if hidden from this user, so saving a person
        # never silently drops their employer.
        choices = policy.organizations(user)
        if self.instance.organization_id is not None:
            choices = choices | Organization.objects.filter(pk=self.instance.organization_id)
        self.fields["organization"].queryset = choices


class SearchForm(forms.Form):
    """?q= on the list pages and global search; an over-long query reads as no query."""

    q = forms.CharField(required=False, max_length=100)

    def query(self) -> str:
        return self.cleaned_data["q"].strip() if self.is_valid() else ""


def field_name() -> forms.CharField:
    """The name of the hidden input a picker fills, chosen by its host form. Element ids
    are derived from it, so it is limited to what is safe in an id and a CSS selector."""
    return forms.CharField(
        max_length=40,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*\Z", "Not a field name.")],
    )


class SuggestForm(forms.Form):
    """A deal form's organization or contact name as typed so far (search as you type).

    Only the first 100 characters are searched; a NUL character (which no name holds and
    PostgreSQL refuses in a query) makes the request invalid.
    """

    name = forms.CharField(required=False)

    def clean_name(self) -> str:
        return self.cleaned_data["name"][:100]


class PickForm(forms.Form):
    """A picker search: the field it fills and what the user has typed so far."""

    field = field_name()
    q = forms.CharField(required=False, max_length=100, strip=True)
    chosen = forms.IntegerField(required=False, min_value=1)


class PickCreateForm(forms.Form):
    """The picker's "create new" path: just a name, more can be filled in later."""

    field = field_name()
    # Not "name": htmx posts the host form along, and a host field could be called that.
    new_name = forms.CharField(max_length=200, error_messages=NAME_ERRORS)
