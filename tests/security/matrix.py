"""The permission matrix as data: who may do what to which record, cell by cell.

Read it against DESIGN.md, "Roles and visibility". Rows are an action on an object scope;
columns are roles. The records are those of tests/security/world.py: the scopes name
whose record it is, seen from the rep's chair ("teammate_deal" is the deal of the rep's
teammate, "other_team_deal" the deal of a rep in another team), and every role is checked
against the same records, so for the teammate "rep_deal" is a teammate's deal and for the
outsider "other_team_deal" is their own.

Symbols, each checked exactly by tests/security/test_permission_matrix.py:

    Y  allowed: a page answers 200 with the record, a write succeeds and the database
       shows its effect
    -  absent: a list, search, export, dashboard or notification list answers 200
       without the record (or without its numbers)
    H  hidden: 404, as if the record did not exist, so ids cannot be probed
    N  refused: 403; the user may see the record but not do this; nothing changes
    R  refused as a bad request: 400; the form does not even offer it (a rep choosing a
       new owner, a rep giving an override reason); nothing changes
    L  sent to a login page (302): anonymous, deactivated, or not staff for the Django
       admin; nothing is shown and nothing changes
    P  pending: the feature does not exist yet; the reason is in PENDING

Design decisions the table records (not spelled out in DESIGN.md):
- A rep's dashboard counts only their own deals ("own numbers"), although the board
  shows their teammates' deals too.
- Notifications go to the deal's owner only (DESIGN: "notifies owners").
- Only an activity's author may delete it, whoever else may edit the deal
  (deals/activities.py: "others' work is history"); admins included.
- Deleting a deal is for managers (the deals they may change) and admins; a rep may not
  delete even their own deal (403), another team's deal stays hidden (404).
- Automations are kept by managers (acting on their teams' deals) and admins; reps get
  404 on Settings > Automations, as on the webhooks page.
- A move (with or without an override reason) of a deal the user sees but may not change
  is refused as such (403) before its form is read; a rep overriding on their own deal
  gets 400 (the form has no override field for them).
- Anyone who may see an organization or person may edit it (contacts/services.py:
  customer records are shared by the team that sells to them).
"""

from __future__ import annotations

from tests.security.world import ROLES

# action            scope               rep  tmt  out  mgr  omg  adm  dea  ano
TABLE = """
view_page           rep_deal             Y    Y    H    Y    H    Y    L    L
view_page           teammate_deal        Y    Y    H    Y    H    Y    L    L
view_page           other_team_deal      H    H    Y    H    Y    Y    L    L
view_on_board       rep_deal             Y    Y    -    Y    -    Y    L    L
view_on_board       teammate_deal        Y    Y    -    Y    -    Y    L    L
view_on_board       other_team_deal      -    -    Y    -    Y    Y    L    L
view_in_search      rep_deal             Y    Y    -    Y    -    Y    L    L
view_in_search      teammate_deal        Y    Y    -    Y    -    Y    L    L
view_in_search      other_team_deal      -    -    Y    -    Y    Y    L    L
move                rep_deal             Y    N    H    Y    H    Y    L    L
move                teammate_deal        N    Y    H    Y    H    Y    L    L
move                other_team_deal      H    H    Y    H    Y    Y    L    L
edit                rep_deal             Y    N    H    Y    H    Y    L    L
edit                teammate_deal        N    Y    H    Y    H    Y    L    L
edit                other_team_deal      H    H    Y    H    Y    Y    L    L
reassign            rep_deal             R    R    H    Y    H    Y    L    L
reassign            teammate_deal        R    R    H    Y    H    Y    L    L
reassign            other_team_deal      H    H    R    H    Y    Y    L    L
delete              rep_deal             N    N    H    Y    H    Y    L    L
delete              teammate_deal        N    N    H    Y    H    Y    L    L
delete              other_team_deal      H    H    N    H    Y    Y    L    L
log_activity        rep_deal             Y    N    H    Y    H    Y    L    L
log_activity        teammate_deal        N    Y    H    Y    H    Y    L    L
log_activity        other_team_deal      H    H    Y    H    Y    Y    L    L
override_gate       rep_deal             R    N    H    Y    H    Y    L    L
override_gate       teammate_deal        N    R    H    Y    H    Y    L    L
override_gate       other_team_deal      H    H    R    H    Y    Y    L    L
dashboard           rep_deal             Y    -    -    Y    -    Y    L    L
dashboard           teammate_deal        -    Y    -    Y    -    Y    L    L
dashboard           other_team_deal      -    -    Y    -    Y    Y    L    L
csv_export          rep_deal             Y    Y    -    Y    -    Y    L    L
csv_export          teammate_deal        Y    Y    -    Y    -    Y    L    L
csv_export          other_team_deal      -    -    Y    -    Y    Y    L    L
notifications       rep_deal             Y    -    -    -    -    -    L    L
notifications       teammate_deal        -    Y    -    -    -    -    L    L
notifications       other_team_deal      -    -    Y    -    -    -    L    L
view_page           rep_activity         Y    Y    H    Y    H    Y    L    L
view_page           teammate_activity    Y    Y    H    Y    H    Y    L    L
view_page           other_team_activity  H    H    Y    H    Y    Y    L    L
delete_activity     rep_activity         Y    N    H    N    H    N    L    L
delete_activity     teammate_activity    N    Y    H    N    H    N    L    L
delete_activity     other_team_activity  H    H    Y    H    N    N    L    L
view_page           rep_org              Y    Y    H    Y    H    Y    L    L
view_page           teammate_org         Y    Y    H    Y    H    Y    L    L
view_page           other_team_org       H    H    Y    H    Y    Y    L    L
view_in_search      rep_org              Y    Y    -    Y    -    Y    L    L
view_in_search      teammate_org         Y    Y    -    Y    -    Y    L    L
view_in_search      other_team_org       -    -    Y    -    Y    Y    L    L
edit                rep_org              Y    Y    H    Y    H    Y    L    L
edit                teammate_org         Y    Y    H    Y    H    Y    L    L
edit                other_team_org       H    H    Y    H    Y    Y    L    L
view_page           rep_person           Y    Y    H    Y    H    Y    L    L
view_page           teammate_person      Y    Y    H    Y    H    Y    L    L
view_page           other_team_person    H    H    Y    H    Y    Y    L    L
view_in_search      rep_person           Y    Y    -    Y    -    Y    L    L
view_in_search      teammate_person      Y    Y    -    Y    -    Y    L    L
view_in_search      other_team_person    -    -    Y    -    Y    Y    L    L
edit                rep_person           Y    Y    H    Y    H    Y    L    L
edit                teammate_person      Y    Y    H    Y    H    Y    L    L
edit                other_team_person    H    H    Y    H    Y    Y    L    L
configure_stages    -                    H    H    H    H    H    Y    L    L
configure_automations -                  H    H    H    Y    Y    Y    L    L
manage_users        -                    L    L    L    L    L    Y    L    L
"""

# (action, scope) -> why the row cannot be checked yet. Empty: every feature exists.
PENDING: dict[tuple[str, str], str] = {}

SYMBOLS = frozenset("Y-HNRLP")


def cells() -> list[tuple[str, str, str, str]]:
    """Every cell as (action, scope, role, expected symbol), in table order."""
    found = []
    for line in TABLE.strip().splitlines():
        action, scope, *symbols = line.split()
        if len(symbols) != len(ROLES) or not set(symbols) <= SYMBOLS:
            raise ValueError(f"malformed matrix row: {line!r}")
        found += [
            (action, scope, role, symbol) for role, symbol in zip(ROLES, symbols, strict=True)
        ]
    return found
