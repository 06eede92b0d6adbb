from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts import policy

if TYPE_CHECKING:
    from accounts.models import User


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def visible_to(self, user: User) -> OrganizationQuerySet:
        """Organizations `user` may see, as the access policy says."""
        return policy.organizations(user, self)

    def matching(self, q: str) -> OrganizationQuerySet:
        return self.filter(name__icontains=q) if q else self


class PersonQuerySet(models.QuerySet["Person"]):
    def visible_to(self, user: User) -> PersonQuerySet:
        """People `user` may see, as the access policy says."""
        return policy.people(user, self)

    def matching(self, q: str) -> PersonQuerySet:
        return self.filter(Q(name__icontains=q) | Q(email__icontains=q)) if q else self


class Organization(models.Model):
    """A company we sell to."""

    name = models.CharField(max_length=200)
    sector = models.CharField(max_length=100, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True)
    annual_revenue = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    website = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(annual_revenue__isnull=True) | Q(annual_revenue__gte=0),
                name="organization_revenue_not_negative",
                violation_error_message="Annual revenue cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def website_url(self) -> str:
        """The website as a safe link target: http(s) only, a bare domain gets https://."""
        site = self.website.strip()
        if site.lower().startswith(("http://", "https://")):
            return site
        if site and ":" not in site and " " not in site:
            return f"https://{site}"
        return ""


class Person(models.Model):
    """A contact, optionally working at an organization."""

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)
    job_title = models.CharField(max_length=100, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="people"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name
