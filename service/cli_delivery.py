"""``fatigue deliveries`` (the report outbox) and ``fatigue export-requests`` (approve researchers' requests).

\b
  fatigue deliveries list [--state pending|delivered|cancelled] [--force F] [--week 2026-W11]
  fatigue deliveries retry --force F --week W [--channel email]     # skip the remaining back-off
  fatigue deliveries cancel --force F --week W [--channel email]    # stop retrying a pending channel
  fatigue export-requests list [--status requested]
  fatigue export-requests approve REQUEST_ID [--approver NAME]
  fatigue export-requests reject REQUEST_ID --reason TEXT
"""

from __future__ import annotations

import getpass
import re
import uuid

import click

from risk.channels import CHANNELS
from service.cli_common import connect, settings_of

__all__ = ["register"]

_WEEK = r"^\d{4}-W\d{2}$"


def _week(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(_WEEK, value):
        raise click.BadParameter("expected an ISO week like 2026-W11")
    return value


@click.group("deliveries")
def deliveries_group() -> None:
    """The weekly reports' delivery outbox: one row per force, week and channel (outbox, mqtt, email)."""


@deliveries_group.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "cancelled"]), default=None)
@click.option("--force", "force_id", default=None)
@click.option("--week", default=None, callback=_week, help="ISO week, e.g. 2026-W11.")
def list_command(state: str | None, force_id: str | None, week: str | None) -> None:
    """List report deliveries (newest week first), with attempts, last error and next attempt."""
    from risk.delivery import list_deliveries

    with connect(settings_of(click.get_current_context())) as conn:
        rows = list_deliveries(conn, state=state, force_id=force_id, iso_week=week)
    if not rows:
        click.echo("no deliveries" + (" in that state" if state else "") + "; reports are queued by `fatigue serve` "
                   "after the weekly flag run")
        return
    for r in rows:
        when = (f"delivered {r['delivered_at']:%Y-%m-%d %H:%M}" if r["state"] == "delivered"
                else f"next attempt {r['next_attempt_at']:%Y-%m-%d %H:%M}" if r["state"] == "pending" else "")
        click.echo(f"{r['iso_week']}  {r['force_id']:<16} {r['channel']:<7} {r['state']:<10} "
                   f"attempts {r['attempts']}  {when}  {r['last_error'] or r['detail'] or ''}".rstrip())
    pending = sum(r["state"] == "pending" for r in rows)
    if pending:
        click.echo(f"{pending} pending: `fatigue serve` retries them with back-off; `fatigue deliveries retry` "
                   "tries now, `fatigue deliveries cancel` stops them")


def _target(force_id: str, week: str, channel: str | None) -> str:
    return f"{force_id} {week}" + (f" ({channel})" if channel else " (every pending channel)")


@deliveries_group.command("cancel")
@click.option("--force", "force_id", required=True)
@click.option("--week", required=True, callback=_week, help="ISO week, e.g. 2026-W11.")
@click.option("--channel", type=click.Choice(CHANNELS), default=None, help="Default: every pending channel.")
def cancel_command(force_id: str, week: str, channel: str | None) -> None:
    """Cancel pending deliveries of one force's weekly report (delivered ones stay as they are)."""
    from risk.delivery import cancel_deliveries

    with connect(settings_of(click.get_current_context())) as conn:
        n = cancel_deliveries(conn, force_id, week, channel, getpass.getuser())
    if not n:
        raise click.ClickException(f"nothing pending for {_target(force_id, week, channel)}; "
                                   "see `fatigue deliveries list --state pending`")
    click.echo(f"cancelled {n} pending deliveries of {_target(force_id, week, channel)}")


@deliveries_group.command("retry")
@click.option("--force", "force_id", required=True)
@click.option("--week", required=True, callback=_week, help="ISO week, e.g. 2026-W11.")
@click.option("--channel", type=click.Choice(CHANNELS), default=None, help="Default: every pending channel.")
def retry_command(force_id: str, week: str, channel: str | None) -> None:
    """Make pending deliveries due now (the next scheduler tick tries them)."""
    from risk.delivery import retry_deliveries

    with connect(settings_of(click.get_current_context())) as conn:
        n = retry_deliveries(conn, force_id, week, channel)
    if not n:
        raise click.ClickException(f"nothing pending for {_target(force_id, week, channel)}")
    click.echo(f"{n} deliveries due now; `fatigue serve` tries them at its next tick")


@click.group("export-requests")
def requests_group() -> None:
    """Researchers' export requests: approve or reject; `fatigue serve` fulfils approved ones."""


@requests_group.command("list")
@click.option("--status", type=click.Choice(["requested", "running", "done", "failed", "rejected"]), default=None)
def requests_list(status: str | None) -> None:
    """List export requests (newest first): id, project, status, approval, ledger entry, detail."""
    with connect(settings_of(click.get_current_context())) as conn:
        rows = conn.execute("SELECT request_id, project, status, approved_by, export_seq, detail, requested_at "
                            "FROM access.export_requests WHERE %(s)s::text IS NULL OR status = %(s)s "
                            "ORDER BY requested_at DESC", {"s": status}).fetchall()
    if not rows:
        click.echo("no export requests")
    for r in rows:
        approval = f"approved by {r[3]}" if r[3] else "awaiting approval" if r[2] == "requested" else ""
        click.echo(f"{r[0]}  {r[1]:<16} {r[2]:<9} {approval}  {f'ledger {r[4]}' if r[4] else ''}  {r[5] or ''}")


@requests_group.command("approve")
@click.argument("request_id", type=click.UUID)
@click.option("--approver", default=None, help="Who approves (recorded in the export ledger); default: you.")
def approve_command(request_id: uuid.UUID, approver: str | None) -> None:
    """Approve a request; `fatigue serve` then runs the export into the exports folder."""
    from exports.fulfil import approve_request

    with connect(settings_of(click.get_current_context())) as conn:
        ok = approve_request(conn, str(request_id), approver or getpass.getuser())
    if not ok:
        raise click.ClickException("no such request awaiting approval; see `fatigue export-requests list`")
    click.echo("approved; `fatigue serve` fulfils it at its next tick (FATIGUE_PSEUDONYM_KEY must be set there)")


@requests_group.command("reject")
@click.argument("request_id", type=click.UUID)
@click.option("--reason", required=True, help="Shown to the researcher (no personal data).")
def reject_command(request_id: uuid.UUID, reason: str) -> None:
    """Reject a request that has not started."""
    from exports.fulfil import reject_request

    with connect(settings_of(click.get_current_context())) as conn:
        ok = reject_request(conn, str(request_id), reason)
    if not ok:
        raise click.ClickException("no such request in state requested; see `fatigue export-requests list`")
    click.echo("rejected")


def register(group: click.Group) -> None:
    """Add ``deliveries`` and ``export-requests`` to the main CLI."""
    group.add_command(deliveries_group)
    group.add_command(requests_group)
