"""Managers' bottleneck dashboards: where deals pile up, and why (DESIGN.md "Dashboards")."""
