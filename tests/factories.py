from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, Team, User
from contacts.models import Organization, Person
from deals.activities import refresh_activity_times
from deals.models import Activity, Deal, StageChange
from stages.models import EntryCriterion, Pipeline, Stage, StageKind


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.REP
    password = factory.django.Password("demo-password")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    name = factory.Sequence(lambda n: f"Pipeline {n}")


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    pipeline = factory.SubFactory(PipelineFactory)
    name = factory.Sequence(lambda n: f"Stage {n}")
    position = factory.Sequence(lambda n: n)
    kind = StageKind.OPEN
    probability = 20


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EntryCriterion

    stage = factory.SubFactory(StageFactory)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Faker("company")


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    name = factory.Faker("name")
    organization = factory.SubFactory(OrganizationFactory)


class DealFactory(factory.django.DjangoModelFactory):
    """A deal with its first history row, as `create_deal` would leave it."""

    class Meta:
        model = Deal
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Deal {n}")
    owner = factory.SubFactory(UserFactory)
    stage = factory.SubFactory(StageFactory)
    pipeline = factory.LazyAttribute(lambda d: d.stage.pipeline)
    amount = Decimal("1000.00")
    position = factory.Sequence(lambda n: n * 1024)

    @factory.post_generation
    def history(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create and extracted is not False:
            StageChange.objects.create(
                deal=self,
                seq=1,
                to_stage=self.stage,
                pipeline=self.pipeline,
                at=self.stage_entered_at,
                by=self.owner,
                source="create",
            )


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    deal = factory.SubFactory(DealFactory)
    owner = factory.LazyAttribute(lambda a: a.deal.owner)
    type = "call"
    subject = factory.Sequence(lambda n: f"Activity {n}")
    done = False
    due_at = factory.LazyFunction(lambda: timezone.now() + timezone.timedelta(days=1))

    @classmethod
    def _create(cls, model_class: type[Activity], *args: Any, **kwargs: Any) -> Activity:
        """Written as the activity services write: the deal's activity times follow."""
        with transaction.atomic():  # the recount locks the deal
            activity = super()._create(model_class, *args, **kwargs)
            refresh_activity_times([activity.deal_id])
        return activity
