"""CLI commands for access control: ``fatigue token ...``, ``fatigue mqtt acl`` and ``fatigue api``.

Add ``"service.cli_access"`` to ``service.cli.AREA_MODULES``; :func:`register` attaches the commands.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from service.auth import ROLES
from service.settings import Settings

if TYPE_CHECKING:
    import psycopg

__all__ = ["register"]


def _settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    if not isinstance(obj, Settings):
        raise click.ClickException("settings were not loaded (run through the `fatigue` command)")
    return obj


def _connect() -> psycopg.Connection[Any]:
    import psycopg

    try:
        return psycopg.connect(_settings().database_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database ({exc.__class__.__name__}); "
                                   "is PostgreSQL running, and is FATIGUE_DATABASE_URL right?") from exc


@click.group("token")
def token_group() -> None:
    """API tokens: create (shown once), list, revoke."""


@token_group.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--force", "force_id", help="Force id (manager tokens only).")
@click.option("--project", help="Research project (researcher tokens only).")
@click.option("--expires", default="30d", show_default=True, help="Lifetime: 12h, 30d, 4w (at most 90 days).")
@click.option("--label", default="", help="Who or what holds it (no personal data needed).")
def token_create(role: str, force_id: str | None, project: str | None, expires: str, label: str) -> None:
    """Create a token and print it once; only its SHA-256 hash is stored."""
    from service.auth import TokenError, create_token, parse_lifetime

    try:
        lifetime = parse_lifetime(expires)
        with _connect() as conn:
            token_id, token = create_token(conn, role, lifetime, force_id=force_id, project=project, label=label)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"token id: {token_id}")
    click.echo(f"token:    {token}")
    click.echo("This is the only time the token is shown: hand it over now (Authorization: Bearer header). "
               f"Revoke with `fatigue token revoke {token_id}`.")


@token_group.command("list")
def token_list() -> None:
    """List tokens (ids, roles, scopes, expiry; never the tokens)."""
    from service.auth import list_tokens

    with _connect() as conn:
        infos = list_tokens(conn)
    if not infos:
        click.echo("no tokens; create one with `fatigue token create --role ...`")
    for t in infos:
        scope = t.force_id or t.project or "-"
        state = "revoked" if t.revoked_at else f"expires {t.expires_at:%Y-%m-%d %H:%M}Z"
        click.echo(f"{t.token_id}  {t.role:<10} {scope:<16} {state:<24} {t.label}")


@token_group.command("revoke")
@click.argument("token_id", type=click.UUID)
def token_revoke(token_id: uuid.UUID) -> None:
    """Revoke the token with id TOKEN_ID now."""
    from service.auth import revoke_token

    with _connect() as conn:
        if not revoke_token(conn, token_id):
            raise click.ClickException(f"no active token {token_id}; see `fatigue token list`")
    click.echo(f"revoked {token_id}")


@click.command("acl")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for passwd, acl and credentials.txt.")
def mqtt_acl(out_dir: Path) -> None:
    """Write Mosquitto's password file and ACL from the gateways and forces in the database."""
    from service.mqtt_acl import AclError, generate

    settings = _settings()
    try:
        with _connect() as conn:
            result = generate(conn, out_dir, ingest_group=settings.ingest_group)
    except AclError as exc:
        raise click.ClickException(f"{exc}\nnothing was written") from exc
    click.echo(f"{len(result.users)} broker user(s); new passwords for {len(result.new_users)}")
    click.echo(f"wrote {result.password_file}, {result.acl_file} and {result.credentials_file} (mode 0600)")
    click.echo("next: copy passwd and acl to the broker's config folder and reload it (kill -HUP); "
               "hand each gateway its line of credentials.txt")


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def api_command(host: str, port: int) -> None:
    """Serve the HTTP API with uvicorn (in production: FATIGUE_DATABASE_URL as fatigue_web, and
    FATIGUE_API_ADMIN_DATABASE_URL as fatigue_web_admin)."""
    import uvicorn

    from service.api import create_app

    settings = _settings()
    app = create_app(settings.database_url, settings.outbox_dir, exports_dir=settings.exports_dir,
                     admin_database_url=settings.api_admin_database_url)
    click.echo(f"serving the API on http://{host}:{port} (docs at /docs); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level=settings.log_level, server_header=False)


def register(group: click.Group) -> None:
    """Add ``token``, ``mqtt acl`` and ``api`` to the main CLI (reusing an ``mqtt`` group if one exists)."""
    group.add_command(token_group)
    group.add_command(api_command)
    mqtt = group.commands.get("mqtt")
    if not isinstance(mqtt, click.Group):
        mqtt = click.Group("mqtt", help="Broker administration.")
        group.add_command(mqtt)
    mqtt.add_command(mqtt_acl)
