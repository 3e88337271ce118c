"""``python -m simulators``: see :func:`simulators.run.cli_entry`."""

from simulators.run import cli_entry

raise SystemExit(cli_entry())
