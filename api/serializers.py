"""What the API reads and writes: plain ids for relations, decimals as strings.

Input serializers are strict: an unknown field is a 400 (no mass assignment, no forged
`source`), and every relation is looked up among the records the caller may see.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts import policy
from accounts.models import Team, User
from contacts.models import Organization, Person
from deals.models import Activity, Deal, StageChange
from stages.models import (
    ActivityType,
    CriterionKind,
    EntryCriterion,
    ForecastCategory,
    Pipeline,
    Stage,
    StageKind,
)


class Strict(serializers.Serializer):
    """Refuses fields it does not know, instead of silently ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown[:20]}
                )
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.INT)
class VisibleRelated(serializers.PrimaryKeyRelatedField):
    """A relation by id, resolved only among the rows `visible(user)` returns."""

    def __init__(self, visible: Any, **kwargs: Any) -> None:
        self.visible = visible
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        return self.visible(self.context["request"].user)


class FailureSerializer(serializers.Serializer):
    criterion_id = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    message = serializers.CharField()
    fix = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    failures = FailureSerializer(many=True, required=False)
    override_allowed = serializers.BooleanField(required=False)
    current_version = serializers.IntegerField(required=False)
    errors = serializers.ListField(child=serializers.DictField(), required=False)


class DealSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    stalled = serializers.SerializerMethodField()

    class Meta:
        model = Deal
        fields = [
            "id",
            "title",
            "amount",
            "currency",
            "expected_close_date",
            "probability_override",
            "next_step",
            "lost_reason",
            "product",
            "owner",
            "pipeline",
            "stage",
            "organization",
            "person",
            "status",
            "stalled",
            "version",
            "stage_entered_at",
            "closed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=StageKind.choices))
    def get_status(self, deal: Deal) -> str:
        return deal.stage.kind

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_stalled(self, deal: Deal) -> list[str]:
        return sorted(flag.rule for flag in deal.stalled_flags.all())


def visible_organizations(user: User) -> Any:
    return policy.organizations(user)


def visible_people(user: User) -> Any:
    return policy.people(user)


def open_stages(user: User) -> Any:
    return Stage.objects.filter(is_archived=False, pipeline__is_archived=False)


def active_users(user: User) -> Any:
    return User.objects.filter(is_active=True)


class DealFieldsIn(Strict):
    title = serializers.CharField(max_length=200)
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, allow_null=True, required=False
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False)
    expected_close_date = serializers.DateField(allow_null=True, required=False)
    probability_override = serializers.IntegerField(
        min_value=0, max_value=100, allow_null=True, required=False
    )
    next_step = serializers.CharField(max_length=200, allow_blank=True, required=False)
    product = serializers.CharField(max_length=100, allow_blank=True, required=False)
    organization = VisibleRelated(visible_organizations, allow_null=True, required=False)
    person = VisibleRelated(visible_people, allow_null=True, required=False)


class DealCreateIn(DealFieldsIn):
    stage = VisibleRelated(open_stages)
    owner = VisibleRelated(active_users, required=False)
    lost_reason = serializers.CharField(max_length=200, allow_blank=True, required=False)
    override_reason = serializers.CharField(max_length=500, allow_blank=True, required=False)


class DealUpdateIn(DealFieldsIn):
    title = serializers.CharField(max_length=200, required=False)
    version = serializers.IntegerField(min_value=1, required=False)


class MoveIn(Strict):
    stage = VisibleRelated(open_stages)
    version = serializers.IntegerField(min_value=1, required=False)
    override_reason = serializers.CharField(max_length=500, allow_blank=True, required=False)


class CloseIn(Strict):
    outcome = serializers.ChoiceField(choices=["won", "lost"])
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, allow_null=True, required=False
    )
    lost_reason = serializers.CharField(max_length=200, allow_blank=True, required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    override_reason = serializers.CharField(max_length=500, allow_blank=True, required=False)


class ReassignIn(Strict):
    owner = VisibleRelated(active_users)
    version = serializers.IntegerField(min_value=1, required=False)


class DealFilters(Strict):
    """The deal list's query string; a malformed value is a 400, never ignored."""

    pipeline = serializers.IntegerField(min_value=1, required=False)
    stage = serializers.IntegerField(min_value=1, required=False)
    owner = serializers.IntegerField(min_value=1, required=False)
    team = serializers.IntegerField(min_value=1, required=False)
    status = serializers.ChoiceField(choices=StageKind.choices, required=False)
    stalled = serializers.BooleanField(required=False, allow_null=True, default=None)
    close_after = serializers.DateField(required=False)
    close_before = serializers.DateField(required=False)
    updated_since = serializers.DateTimeField(required=False)
    search = serializers.CharField(max_length=200, required=False)
    cursor = serializers.CharField(max_length=500, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=200, required=False)


class StageChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StageChange
        fields = [
            "id",
            "seq",
            "from_stage",
            "to_stage",
            "pipeline",
            "at",
            "by",
            "source",
            "override_reason",
            "overridden",
        ]
        read_only_fields = fields


class ActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Activity
        fields = [
            "id",
            "type",
            "subject",
            "note",
            "due_at",
            "done",
            "done_at",
            "owner",
            "deal",
            "person",
            "created_at",
        ]
        read_only_fields = fields


def editable_deals(user: User) -> Any:
    return policy.changeable_deals(user)


class ActivityIn(Strict):
    deal = VisibleRelated(editable_deals)
    type = serializers.ChoiceField(choices=ActivityType.choices)
    subject = serializers.CharField(max_length=200)
    note = serializers.CharField(max_length=5000, allow_blank=True, required=False)
    due_at = serializers.DateTimeField(allow_null=True, required=False)
    done = serializers.BooleanField(required=False)
    person = VisibleRelated(visible_people, allow_null=True, required=False)


class ActivityUpdateIn(Strict):
    type = serializers.ChoiceField(choices=ActivityType.choices, required=False)
    subject = serializers.CharField(max_length=200, required=False)
    note = serializers.CharField(max_length=5000, allow_blank=True, required=False)
    due_at = serializers.DateTimeField(allow_null=True, required=False)
    done = serializers.BooleanField(required=False)


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "sector", "employees", "annual_revenue", "website", "created_at"]
        read_only_fields = fields


class PersonSerializer(serializers.ModelSerializer):
    # Blank when unknown: a plain string in the schema, not format "email".
    email = serializers.CharField(read_only=True)

    class Meta:
        model = Person
        fields = ["id", "name", "email", "phone", "job_title", "organization", "created_at"]
        read_only_fields = fields


class OrganizationIn(Strict):
    name = serializers.CharField(max_length=200)
    sector = serializers.CharField(max_length=100, allow_blank=True, required=False)
    employees = serializers.IntegerField(
        min_value=0, max_value=2_147_483_647, allow_null=True, required=False
    )
    annual_revenue = serializers.DecimalField(
        max_digits=16, decimal_places=2, min_value=0, allow_null=True, required=False
    )
    website = serializers.CharField(max_length=200, allow_blank=True, required=False)


class OrganizationUpdateIn(OrganizationIn):
    name = serializers.CharField(max_length=200, required=False)


class PersonIn(Strict):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254, allow_blank=True, required=False)
    phone = serializers.CharField(max_length=50, allow_blank=True, required=False)
    job_title = serializers.CharField(max_length=100, allow_blank=True, required=False)
    organization = VisibleRelated(visible_organizations, allow_null=True, required=False)


class PersonUpdateIn(PersonIn):
    name = serializers.CharField(max_length=200, required=False)


class PipelineIn(Strict):
    name = serializers.CharField(max_length=100)


class PipelineUpdateIn(Strict):
    name = serializers.CharField(max_length=100, required=False)
    is_archived = serializers.BooleanField(required=False)


class CriterionSerializer(serializers.ModelSerializer):
    requirement = serializers.CharField(read_only=True)

    class Meta:
        model = EntryCriterion
        fields = [
            "id",
            "stage",
            "kind",
            "position",
            "field_name",
            "amount",
            "activity_type",
            "contact_role",
            "label",
            "days",
            "requirement",
        ]
        read_only_fields = fields


class CriterionParametersIn(Strict):
    """A criterion's parameters; which ones a kind needs is the stages service's rule."""

    field_name = serializers.CharField(max_length=40, allow_blank=True, required=False)
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, allow_null=True, required=False
    )
    activity_type = serializers.CharField(max_length=10, allow_blank=True, required=False)
    contact_role = serializers.CharField(max_length=20, allow_blank=True, required=False)
    label = serializers.CharField(max_length=200, allow_blank=True, required=False)
    days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, required=False)


class CriterionIn(CriterionParametersIn):
    stage = serializers.PrimaryKeyRelatedField(queryset=Stage.objects.all())
    kind = serializers.ChoiceField(choices=CriterionKind.choices)


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = [
            "id",
            "pipeline",
            "name",
            "position",
            "kind",
            "probability",
            "forecast_category",
            "rotting_days",
            "guidance",
            "is_archived",
        ]
        read_only_fields = fields


class StageIn(Strict):
    pipeline = serializers.PrimaryKeyRelatedField(queryset=Pipeline.objects.all())
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=StageKind.choices, required=False)
    probability = serializers.IntegerField(min_value=0, max_value=100, required=False)
    forecast_category = serializers.ChoiceField(choices=ForecastCategory.choices, required=False)
    rotting_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    guidance = serializers.CharField(max_length=5000, allow_blank=True, required=False)


class StageUpdateIn(StageIn):
    pipeline = None  # type: ignore[assignment]
    name = serializers.CharField(max_length=100, required=False)


class PipelineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Pipeline
        fields = ["id", "name", "position", "is_archived"]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name")

    class Meta:
        model = User
        fields = ["id", "username", "name", "role", "team", "is_active"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "manager"]
        read_only_fields = fields
