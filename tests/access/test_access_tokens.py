"""S5: expired, revoked and tampered tokens are refused; tokens never reach logs, URLs or the database."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import click
import psycopg
import pytest
import structlog
from click.testing import CliRunner
from fastapi.testclient import TestClient

from service.auth import TokenError, create_token, hash_token, new_token, parse_lifetime, verify_token
from service.cli_access import register
from service.settings import Settings
from tests.access.access_support import World, bearer


def test_token_format_and_hash() -> None:
    token = new_token()
    assert token.startswith("fat_") and len(token) == 47
    assert hash_token(token) == hashlib.sha256(token.encode()).digest()
    assert new_token() != token


@pytest.mark.parametrize("text, days", [("12h", 0.5), ("30d", 30), ("4w", 28), ("90d", 90)])
def test_parse_lifetime(text: str, days: float) -> None:
    assert parse_lifetime(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["91d", "0d", "30", "-1d", "1y", "13w"])
def test_parse_lifetime_refuses(text: str) -> None:
    with pytest.raises(TokenError):
        parse_lifetime(text)


def _tampered(token: str) -> str:
    last = "A" if token[-1] != "A" else "B"
    return token[:-1] + last


def test_expired_revoked_tampered_and_malformed_get_401(client: TestClient, world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        _, expired = create_token(conn, "manager", timedelta(days=1), force_id="WMP")
        conn.execute("UPDATE access.tokens SET created_at = now() - interval '2 days', "
                     "expires_at = now() - interval '1 day' WHERE token_sha256 = %s", (hash_token(expired),))
        _, revoked = create_token(conn, "manager", timedelta(days=1), force_id="WMP")
        conn.execute("UPDATE access.tokens SET revoked_at = now() WHERE token_sha256 = %s", (hash_token(revoked),))
        assert verify_token(conn, expired) is None and verify_token(conn, revoked) is None
    good = world.managers["WMP"]
    for token in (expired, revoked, _tampered(good), good[:-1], good + "x", "fat_" + "A" * 43, "", "Bearer"):
        resp = client.get("/v1/forces/WMP/flags", headers=bearer(token))
        assert resp.status_code == 401, token
        assert resp.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/forces/WMP/flags").status_code == 401
    assert client.get("/v1/forces/WMP/flags", headers={"Authorization": f"Basic {good}"}).status_code == 401
    # a token in the URL is ignored, never accepted
    assert client.get("/v1/forces/WMP/flags", params={"access_token": good}).status_code == 401


def test_tokens_never_logged(client: TestClient, world: World, caplog: pytest.LogCaptureFixture,
                             capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        made = client.post("/v1/admin/tokens", json={"role": "researcher", "project": "P9"},
                           headers=bearer(world.admin))
        fresh = made.json()["token"]
        for token in [*world.all_tokens(), fresh, _tampered(fresh)]:
            client.get("/v1/forces/WMP/flags", headers=bearer(token))
            client.get("/v1/projects/P9/exports", headers=bearer(token))
    out, err = capsys.readouterr()
    haystack = "\n".join([repr(events), caplog.text, out, err])
    assert events, "the API should have logged its requests"
    for token in [*world.all_tokens(), fresh]:
        assert token not in haystack
        assert token[4:] not in haystack


def test_database_stores_only_hashes(world: World) -> None:
    tokens = world.all_tokens()
    with psycopg.connect(world.url) as conn:
        tables = conn.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                              "WHERE schemaname IN ('access', 'core', 'risk')").fetchall()
        for (table,) in tables:
            text = "\n".join(str(r[0]) for r in conn.execute(f"SELECT t::text FROM {table} t").fetchall())
            assert not any(tok in text or tok[4:] in text for tok in tokens), table
        hashes = {bytes(r[0]) for r in conn.execute("SELECT token_sha256 FROM access.tokens").fetchall()}
    assert {hash_token(t) for t in tokens} <= hashes


def _cli(db_url: str) -> tuple[click.Group, Settings]:
    group = click.Group("fatigue")
    register(group)
    return group, Settings(database_url=db_url)


def test_cli_token_create_list_revoke(world: World) -> None:
    group, settings = _cli(world.url)
    runner = CliRunner()
    made = runner.invoke(group, ["token", "create", "--role", "manager", "--force", "GMP", "--expires", "7d",
                                 "--label", "duty inspector"], obj=settings)
    assert made.exit_code == 0, made.output
    token = next(line.split()[-1] for line in made.output.splitlines() if line.startswith("token:"))
    token_id = next(line.split()[-1] for line in made.output.splitlines() if line.startswith("token id:"))
    listed = runner.invoke(group, ["token", "list"], obj=settings)
    assert listed.exit_code == 0 and token_id in listed.output and token not in listed.output
    assert runner.invoke(group, ["token", "revoke", token_id], obj=settings).exit_code == 0
    again = runner.invoke(group, ["token", "revoke", token_id], obj=settings)
    assert again.exit_code != 0 and "no active token" in again.output
    bad = runner.invoke(group, ["token", "create", "--role", "researcher", "--expires", "30d"], obj=settings)
    assert bad.exit_code != 0 and "--project" in bad.output
    with psycopg.connect(world.url) as conn:
        assert verify_token(conn, token) is None
