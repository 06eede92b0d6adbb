"""Benchmarks: the board, moves, jobs and dashboards on PostgreSQL, against their floors.

Run `python -m bench --sizes 10000,100000,1000000` (`make bench`) or `python -m bench
--quick` (`make bench-quick`). See docs/performance.md for what each figure means.
Nothing here is imported by the application.
"""
