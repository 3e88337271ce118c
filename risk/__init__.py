"""Risk: the 120-day programme definition (versioned TOML), vectorised weekly flag evaluation, the weekly
flag job with revisions, and the force managers' weekly reports and their delivery.

May import: `features`, `models`, `store`.
"""
