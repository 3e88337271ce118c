"""Store: numbered SQL migrations and their runner, connections, TimescaleDB detection, shared COPY and
upsert helpers, and the administrative imports (participants, rosters, withdrawal and erasure).

May import: nothing else of this project.
"""
