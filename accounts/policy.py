"""The access policy: the one place that decides who may see or do what.

DESIGN.md's permission matrix is the specification. Every door asks here: views and
templates (through `for_user`, in every template's context as `policy`), form choice
lists, search, suggestions, reports, exports, e-mails, notifications and imports. Nothing
else tests a role: `tests/test_architecture_roles.py` keeps it so.

How to use it: `from accounts import policy`. To read records, start from the policy's
queryset and narrow it: `policy.deals(user).filter(...)`, `policy.activities(user)`,
`policy.organizations(user)`, `policy.people(user)`, `policy.notifications(user)`,
`policy.dashboard_deals(user)`; for one record in a view use
`policy.visible_or_404(policy.deals(user), pk)` (404 if hidden), then ask the yes/no
question for the action, e.g. `policy.changeable_deal_or_403(user, deal)` or
`policy.can_delete_deal(user, deal)` (403 if seen but not allowed), before reading the
form. Actions in services ask the same questions (`policy.can_reassign`,
`policy.can_assign_to`, `policy.can_override_gate`, `policy.can_import`, …), and lock
rows from `policy.changeable_deals(user)`. Mail and notices decided at send time filter
with `policy.sendable_notifications(rows)` or `policy.deal_visible_to_recipient(...)`.
Templates read `{% if policy.can_configure %}` (context processor
`accounts.context_processors.policy`); per-record answers are worked out in the view
(`deal.can_move = policy.can_change_deal(user, deal)`). A new rule goes here, with a
test in tests/accounts/test_policy.py and, for a new URL, a line in
tests/security/test_url_permissions.py.

Two kinds of answer:
- querysets of what a user may see or change (`deals`, `changeable_deals`, `activities`,
  `organizations`, `people`, `notifications`, `dashboard_deals`, `forecast_rows`, …);
  reads and row locks start from them, so a record the user may not see is simply not
  there (404, never 403: ids cannot be probed);
- yes/no questions about one action (`can_change_deal`, `can_reassign`, …): a record
  the user sees but may not change answers 403.

The rules, as a table (rep / manager / admin; a deactivated or anonymous user: nothing):

| rule | rep | manager | admin |
|---|---|---|---|
| see a deal (its activities, history, notices) | own + team's | own + managed teams' | all |
| change a deal (edit, move, close, snooze, log) | own | own + managed teams' | all |
| delete a deal | no (403) | own + managed teams' | all |
| delete an activity | its author | its author | its author |
| create for another owner / reassign | no | to self, managed teams' members | anyone |
| override a failed entry criterion | no | yes, with a reason | yes, with a reason |
| see / change an organization or person | on a deal they see, or theirs | same | all |
| dashboards and forecast numbers | own deals | what they see | all |
| CSV export (board, lists, dashboards) | what they see | what they see | all |
| configure pipelines, stages, criteria; audit log | no | no | yes |
| import CSV; see/confirm/undo an import | no | into their teams; own jobs | all; every job |
| import: create missing users | no | no | yes |
| webhooks, automations | no | own endpoints; their teams' deals | all |
| API tokens | own | own | own; may revoke anyone's |
| users (API list) | own team | self + managed teams | all |

Models of the apps above are looked up by label, not imported: accounts sits at the bottom
of the app table (DESIGN, "Apps"), yet the rules must name the records they govern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import models
from django.db.models import Case, Exists, F, Func, OuterRef, Q, QuerySet, Subquery, When

from accounts.models import Role, Team, User
from common.errors import NotAllowed, NotVisible

if TYPE_CHECKING:
    from contacts.models import Organization, Person
    from deals.models import Activity, Deal, Notification

NOTHING = Q(pk__in=[])


def _model(label: str) -> Any:
    return apps.get_model(label)


# --- roles: the only place that reads them -------------------------------------------------


def _active(user: Any) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def is_admin(user: Any) -> bool:
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


def is_manager(user: Any) -> bool:
    return _active(user) and user.role == Role.MANAGER


def rule_inputs(user: Any) -> tuple[Any, ...]:
    """Everything the rules here read from `user` itself; whatever else they need (a team's
    members, whom a manager manages) they ask the database inside the SQL they make. SQL
    built from a rule for this user can be kept under this key (common.statements)."""
    return (
        user.pk,
        user.is_authenticated,
        user.is_active,
        getattr(user, "role", None),
        user.is_superuser,
        getattr(user, "team_id", None),
    )


def admins() -> QuerySet[User]:
    """Active admins, those with the admin role first, then superusers, oldest first
    (who acts when a command names no user)."""
    admin = Q(role=Role.ADMIN) | Q(is_superuser=True)
    by_role = Case(When(role=Role.ADMIN, then=0), default=1)
    return User.objects.filter(admin, is_active=True).order_by(by_role, "pk")


def _managed_team_ids(user: User) -> set[int]:
    """The teams `user` manages, read once per user object (one query)."""
    cached = getattr(user, "_policy_managed_teams", None)
    if cached is None:
        cached = set(Team.objects.filter(manager=user).values_list("pk", flat=True))
        user._policy_managed_teams = cached
    return cached


# --- deals: whose deals a user may see or change ------------------------------------------


def _owners(user: Any, *, change: bool) -> QuerySet[User] | None:
    """Users whose deals `user` may see (or change); None means everyone's."""
    if is_admin(user):
        return None
    if is_manager(user):
        return User.objects.filter(Q(pk=user.pk) | Q(team__manager=user))
    if not change and user.team_id is not None:
        return User.objects.filter(Q(pk=user.pk) | Q(team_id=user.team_id))
    return User.objects.filter(pk=user.pk)


def deal_filter(user: Any, *, prefix: str = "", change: bool = False) -> Q | None:
    """The matrix as a filter on a deal's owner; None for "everything", NOTHING for nothing.

    `prefix` reaches the owner through a relation (`deal__` for activities), and models
    that carry an owner of their own (forecast rows) use the same rule on it.
    """
    if not _active(user):
        return NOTHING
    owners = _owners(user, change=change)
    if owners is None:
        return None
    # "owner in (a small set of users)" as a subquery lets the database use the owner
    # index; an OR across a join to users would scan every deal.
    return Q(OwnerIn(F(f"{prefix}owner_id"), Subquery(owners.order_by().values("pk"))))


class OwnerIn(Func):
    """`column IN (subquery)`, written for PostgreSQL as `column = ANY(ARRAY(subquery))`.

    Same rows, different plan: PostgreSQL turns `IN (subquery)` into a join and then
    guesses how many deals a team owns, often choosing to scan every deal (23 ms for a
    rep's board totals at 100k deals). `ANY(ARRAY(…))` runs the subquery once, first, and
    hands its few ids to the (owner, stage) index as a list (5 ms).
    """

    output_field = models.BooleanField()
    conditional = True

    def __init__(self, column: F, subquery: Subquery) -> None:
        super().__init__(column, subquery)

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[override]
        column, subquery = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        subquery_sql, subquery_params = compiler.compile(subquery)
        params = (*column_params, *subquery_params)
        if connection.vendor == "postgresql":
            return f"{column_sql} = ANY(ARRAY{subquery_sql})", params
        return f"{column_sql} IN {subquery_sql}", params


def _restrict(rows: QuerySet, rule: Q | None) -> QuerySet:
    return rows if rule is None else rows.filter(rule)


def deals(user: Any, rows: QuerySet[Deal] | None = None) -> QuerySet[Deal]:
    """Deals `user` may see: the one gate for every list, board, count, sum and export."""
    rows = _model("deals.Deal").objects.all() if rows is None else rows
    return _restrict(rows, deal_filter(user))


def changeable_deals(user: Any, rows: QuerySet[Deal] | None = None) -> QuerySet[Deal]:
    """Deals `user` may edit, move, close, snooze or log activities on."""
    rows = _model("deals.Deal").objects.all() if rows is None else rows
    return _restrict(rows, deal_filter(user, change=True))


def deal_change_rule(user: Any) -> Callable[[Deal], bool]:
    """A per-deal "may `user` change it?" for deals already read as visible: at most one
    query per user (their managed teams), whatever the number of deals (board cards).
    Needs `deal.owner` for managers' non-own deals."""
    if not _active(user):
        return lambda deal: False
    if is_admin(user):
        return lambda deal: True
    if is_manager(user):
        managed = _managed_team_ids(user)
        return lambda deal: deal.owner_id == user.pk or deal.owner.team_id in managed
    return lambda deal: deal.owner_id == user.pk


def can_change_deal(user: Any, deal: Deal) -> bool:
    return deal_change_rule(user)(deal)


def can_delete_deals(user: Any) -> bool:
    """Who deletes deals at all: managers (the deals they may change) and admins (any).
    Reps never: they archive by closing."""
    return is_admin(user) or is_manager(user)


def can_delete_deal(user: Any, deal: Deal) -> bool:
    """`deal` (already read as visible) may be deleted by `user`; else 403."""
    return can_delete_deals(user) and can_change_deal(user, deal)


def sees_deals_owned_by(user: Any, owner_id: Any) -> bool:
    """Would `user` see a deal owned by `owner_id`? The matrix is a rule on a deal's owner,
    so it also answers for a deal that no longer exists (a deal.deleted event names its
    owner)."""
    if not _active(user):
        return False
    owners = _owners(user, change=False)
    return owners is None or owners.filter(pk=owner_id).exists()


def deal_visible_to_recipient(deal: str = "deal_id", recipient: str = "user_id") -> Q:
    """ "The deal in column `deal` is visible to the user in column `recipient`", for many
    recipients at once (e-mails and notices about deals, decided when they are sent).

    `deal_filter`'s rule written per row of a set, kept beside it so the two are read (and
    tested, tests/accounts/test_policy.py) together: an active recipient sees a deal if
    they are an admin, own it, manage its owner's team, or are a rep in its owner's team.
    """
    me = User.objects.filter(pk=OuterRef(recipient), is_active=True)
    the_deal = _model("deals.Deal").objects.filter(pk=OuterRef(deal))
    return Q(Exists(me)) & (
        Q(Exists(me.filter(Q(role=Role.ADMIN) | Q(is_superuser=True))))
        | Q(Exists(the_deal.filter(owner_id=OuterRef(recipient))))
        | (
            Q(Exists(me.filter(role=Role.MANAGER)))
            & Q(Exists(the_deal.filter(owner__team__manager_id=OuterRef(recipient))))
        )
        | (
            Q(Exists(me.filter(role=Role.REP)))
            & Q(Exists(the_deal.filter(owner__team__members=OuterRef(recipient))))
        )
    )


# --- what hangs off deals --------------------------------------------------------------------


def activities(user: Any, rows: QuerySet[Activity] | None = None) -> QuerySet[Activity]:
    """Activities on deals `user` may see."""
    rows = _model("deals.Activity").objects.all() if rows is None else rows
    return _restrict(rows, deal_filter(user, prefix="deal__"))


def changeable_activities(user: Any) -> QuerySet[Activity]:
    """Activities `user` may edit or complete: those on deals they may change."""
    return _restrict(
        _model("deals.Activity").objects.all(), deal_filter(user, prefix="deal__", change=True)
    )


def can_delete_activity(user: Any, activity: Activity) -> bool:
    """Only its author deletes an activity (others' work is history), admins included."""
    return _active(user) and activity.owner_id == user.pk


def notifications(user: Any) -> QuerySet[Notification]:
    """`user`'s own notifications, less those about deals they may no longer see (the
    deal was reassigned away, or the user changed teams)."""
    mine = _model("deals.Notification").objects.filter(user=user) if _active(user) else None
    if mine is None:
        return _model("deals.Notification").objects.none()
    rule = deal_filter(user)
    if rule is None:
        return mine
    # Each notice probes its own deal by primary key. `deal IN (visible deals)` made the
    # database hash every visible deal for each page's bell count (tens of ms at 100k).
    visible = _model("deals.Deal").objects.filter(rule, pk=OuterRef("deal_id"))
    return mine.filter(Q(deal__isnull=True) | Exists(visible))


def sendable_notifications(rows: QuerySet[Notification]) -> QuerySet[Notification]:
    """Notices that may still be sent to their recipient: about no deal, or about one the
    recipient may see now (e-mail is decided when it is sent, not when the notice was made)."""
    return rows.filter(Q(deal__isnull=True) | deal_visible_to_recipient("deal_id", "user_id"))


# --- customer records ----------------------------------------------------------------------


def organizations(user: Any, rows: QuerySet[Organization] | None = None) -> QuerySet[Organization]:
    """Organizations of deals `user` may see, plus those `user` created; admins see all."""
    rows = _model("contacts.Organization").objects.all() if rows is None else rows
    if not _active(user):
        return rows.none()
    if is_admin(user):
        return rows
    # NULLs are filtered out so the subquery stays safe under negation (NOT IN).
    seen = deals(user).filter(organization__isnull=False).values("organization_id")
    return rows.filter(Q(pk__in=seen) | Q(created_by=user))


def people(user: Any, rows: QuerySet[Person] | None = None) -> QuerySet[Person]:
    """People on deals `user` may see (primary contact or in a contact role), plus those
    `user` created; admins see all."""
    rows = _model("contacts.Person").objects.all() if rows is None else rows
    if not _active(user):
        return rows.none()
    if is_admin(user):
        return rows
    seen = deals(user)
    roles = _model("deals.DealContact").objects.filter(deal__in=seen.values("pk"))
    return rows.filter(
        Q(pk__in=seen.filter(person__isnull=False).values("person_id"))
        | Q(pk__in=roles.values("person_id"))
        | Q(created_by=user)
    )


def customer_records(user: Any, model: type[models.Model]) -> QuerySet:
    """`organizations` or `people`, for code that handles either kind (pickers, locks)."""
    if model._meta.label == "contacts.Organization":
        return organizations(user, model._default_manager.all())
    return people(user, model._default_manager.all())


# Anyone who may see a customer record may change it: organizations and people are shared
# by the team that sells to them (Pipedrive's default visibility group).
changeable_organizations = organizations
changeable_people = people


# --- owners: reassigning, creating for others, choice lists --------------------------------


def can_reassign(user: Any) -> bool:
    """Managers (within the teams they manage) and admins hand deals to others."""
    return is_admin(user) or is_manager(user)


def assignable_owners(user: Any) -> QuerySet[User]:
    """Who `user` may make a deal's owner (reassign, create for, import for): admins
    anyone active; managers themselves and members of the teams they manage; reps no one
    else (a rep's own deals are created as theirs without a choice)."""
    active = User.objects.filter(is_active=True)
    if is_admin(user):
        return active
    if is_manager(user):
        return active.filter(Q(pk=user.pk) | Q(team__manager=user))
    return active.none()


def assigns_anyone(user: Any) -> bool:
    """Admins may give deals to anyone; managers only within the teams they manage."""
    return is_admin(user)


def can_assign_to(user: Any, owner: User) -> bool:
    """May `user` create or hand a deal to `owner`? Always to themselves, if active.
    (Whether `owner` is still active is the action's own rule, with its own message.)"""
    if not _active(user):
        return False
    if owner.pk == user.pk or is_admin(user):
        return True
    return is_manager(user) and owner.team_id in _managed_team_ids(user)


def can_filter_by_team(user: Any) -> bool:
    """The board's team filter: for those who may see several teams' deals."""
    return is_admin(user) or is_manager(user)


def deal_owners(user: Any) -> QuerySet[User]:
    """People whose deals `user` may see: the board's owner filter."""
    owners = _owners(user, change=False) if _active(user) else User.objects.none()
    return User.objects.filter(is_active=True) if owners is None else owners


# --- dashboards, forecasts, exports -------------------------------------------------------


def numbers_scope(user: Any) -> str:
    """Whose numbers `user`'s dashboards count: "all", "teams" or "own" (DESIGN: a rep's
    dashboards show their own numbers, narrower than the board, which shows the team's)."""
    if is_admin(user):
        return "all"
    if is_manager(user):
        return "teams"
    return "own"


def dashboard_deals(user: Any) -> QuerySet[Deal]:
    """Deals whose numbers `user`'s dashboards and forecasts count."""
    rows = deals(user).order_by()
    return rows.filter(owner=user) if numbers_scope(user) == "own" else rows


def forecast_rows(user: Any, rows: QuerySet, *, own_only: bool = True) -> QuerySet:
    """Per-owner figures (forecast rows): the owners' deals' own rule, and (`own_only`,
    what the forecast page counts) for a rep only their own rows."""
    rows = _restrict(rows, deal_filter(user))
    return rows.filter(owner=user) if own_only and numbers_scope(user) == "own" else rows


def may_choose_whose_numbers(user: Any) -> bool:
    """Dashboards and forecasts offer team and owner filters (reps have only their own)."""
    return numbers_scope(user) != "own"


def report_teams(user: Any) -> QuerySet[Team]:
    """Teams whose numbers `user` may look at."""
    if is_admin(user):
        return Team.objects.all()
    if is_manager(user):
        return Team.objects.filter(manager=user)
    return Team.objects.none()


def report_owners(user: Any) -> QuerySet[User]:
    """Owners whose numbers `user` may filter by."""
    if is_admin(user):
        return User.objects.filter(is_active=True)
    if is_manager(user):
        return User.objects.filter(Q(pk=user.pk) | Q(team__manager=user)).distinct()
    return User.objects.filter(pk=user.pk) if _active(user) else User.objects.none()


export_deals = deals


# --- configuration, audit, gate overrides ------------------------------------------------


def can_configure(user: Any) -> bool:
    """Pipelines, stages, criteria (and users and teams, through the Django admin)."""
    return is_admin(user)


def can_view_audit(user: Any) -> bool:
    return is_admin(user)


def audit_events(user: Any) -> QuerySet:
    rows = _model("accounts.AuditEvent").objects.all()
    return rows if can_view_audit(user) else rows.none()


def can_override_gate(user: Any) -> bool:
    """Managers and admins may move past a failed entry criterion, with a reason."""
    return is_admin(user) or is_manager(user)


def _own_or_all(user: Any, rows: QuerySet, owner_field: str, *, allowed: bool) -> QuerySet:
    """Records `user` owns (through `owner_field`); every one for admins; none at all
    unless `allowed` (import jobs, webhook endpoints, API tokens)."""
    if not allowed:
        return rows.none()
    return rows if is_admin(user) else rows.filter(**{owner_field: user})


# --- imports -------------------------------------------------------------------------------


def can_import(user: Any) -> bool:
    """Managers import into the teams they manage; admins anywhere."""
    return is_admin(user) or is_manager(user)


def import_jobs(user: Any, rows: QuerySet) -> QuerySet:
    """Import jobs `user` may see, confirm or undo: their own; admins everyone's."""
    return _own_or_all(user, rows, "created_by", allowed=can_import(user))


def can_handle_import(user: Any, job: Any) -> bool:
    return can_import(user) and (is_admin(user) or job.created_by_id == user.pk)


def can_create_users_on_import(user: Any) -> bool:
    """Creating missing owners (login accounts) is user management: admins only."""
    return is_admin(user)


# --- webhooks, automations, API tokens ---------------------------------------------------


def can_manage_automations(user: Any) -> bool:
    """Webhooks and automations: managers for their teams' deals, admins for all."""
    return is_admin(user) or is_manager(user)


can_manage_webhooks = can_manage_automations


def automation_rules(user: Any, rows: QuerySet) -> QuerySet:
    """Automation rules `user` may see and change: admins all, managers their own."""
    return _own_or_all(user, rows, "owner", allowed=can_manage_automations(user))


def acts_on_every_team(user: Any) -> bool:
    """Admins' rules and endpoints may name any team or user (and the pages show owners);
    a manager's only the teams they manage."""
    return is_admin(user)


def admin_users() -> Q:
    """Who counts as an admin, as a filter on users (e.g. "notify the admins")."""
    return Q(role=Role.ADMIN) | Q(is_superuser=True)


def automation_deals(user: Any) -> QuerySet[Deal]:
    """Deals a manager's webhooks and automations may act on: those they may change."""
    if not can_manage_automations(user):
        return _model("deals.Deal").objects.none()
    return changeable_deals(user)


def webhook_deals(subscriber: Any) -> QuerySet[Deal]:
    """Deals a webhook endpoint's owner is told about, decided when each delivery is sent
    (a manager who lost a team stops hearing about its deals)."""
    return automation_deals(subscriber)


def webhook_endpoints(user: Any, rows: QuerySet) -> QuerySet:
    """Webhook endpoints `user` may see and manage: admins all, managers their own."""
    return _own_or_all(user, rows, "owner", allowed=can_manage_webhooks(user))


def sees_others_endpoints(user: Any) -> bool:
    """The webhooks page lists other users' endpoints (with an owner column)."""
    return is_admin(user)


def api_tokens(user: Any, rows: QuerySet) -> QuerySet:
    """Every user's own API tokens (the tokens page's "your tokens")."""
    return rows.filter(user=user) if _active(user) else rows.none()


def revocable_tokens(user: Any, rows: QuerySet) -> QuerySet:
    """Tokens `user` may revoke: their own; admins anyone's. Others' are not found (404)."""
    return _own_or_all(user, rows, "user", allowed=_active(user))


def can_revoke_others_tokens(user: Any) -> bool:
    """The tokens page lists everyone else's active tokens, to revoke them."""
    return is_admin(user)


# --- the API's read-only lists ----------------------------------------------------------


def visible_users(user: Any) -> QuerySet[User]:
    """Users `user` may look up (the API's users list): everyone for admins, else the
    people whose deals they may see (themselves, their team, the teams they manage)."""
    if not _active(user):
        return User.objects.none()
    owners = _owners(user, change=False)
    return User.objects.all() if owners is None else owners


# --- for views and templates ---------------------------------------------------------------


def visible_or_404[T: models.Model](rows: QuerySet[T], pk: Any) -> T:
    """The record if it is among `rows` (a policy queryset), else NotVisible (404): never
    tells whether it exists."""
    found = rows.filter(pk=pk).first()
    if found is None:
        raise NotVisible("Not found.")
    return found


def changeable_deal_or_403(user: Any, deal: Deal) -> Deal:
    """`deal` (already read as visible) if `user` may change it; NotAllowed (403) if not."""
    if not can_change_deal(user, deal):
        raise NotAllowed("You can only change deals you own or manage.")
    return deal


# The questions about a user (not about one record) that templates may ask, by name.
USER_QUESTIONS = frozenset(
    {
        "can_configure",
        "can_view_audit",
        "can_import",
        "can_reassign",
        "assigns_anyone",
        "can_override_gate",
        "can_create_users_on_import",
        "can_filter_by_team",
        "may_choose_whose_numbers",
        "numbers_scope",
        "can_manage_automations",
        "sees_others_endpoints",
        "can_revoke_others_tokens",
        "acts_on_every_team",
    }
)


class UserPolicy:
    """The policy's answers for one user, for templates: `{% if policy.can_configure %}`.
    Each answer is worked out when first asked, once per request."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self._answers: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in USER_QUESTIONS:
            raise AttributeError(name)
        if name not in self._answers:
            self._answers[name] = globals()[name](self.user)
        return self._answers[name]


def for_user(user: Any) -> UserPolicy:
    return UserPolicy(user)
