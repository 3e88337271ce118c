"""Researchers' export requests: approved -> fulfilled by the scheduler into the exports folder -> downloaded
over the API with the researcher's token, every file's SHA-256 equal to the ledger's. Real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from exports.fulfil import approve_request, reject_request
from exports.job import ExportRequest, run_export
from service.api import create_app
from service.auth import create_token
from service.scheduler import Scheduler
from store.migrate import migrate
from tests.conftest import create_database, drop_database
from tests.exports.export_cohort import MASTER_KEY, build_cohort
from tests.service.delivery_support import serve_config

A, B = "sleep-study-a", "other-project-b"


@pytest.fixture(scope="module")
def cohort_url(pg_admin_url: str) -> Iterator[str]:
    url = create_database(pg_admin_url, "fatigue_fulfil")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        build_cohort(conn)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


def _ledger(url: str) -> dict[int, dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT seq, project, approver, file_hashes FROM exports.export_ledger").fetchall()
    return {int(r[0]): {"project": r[1], "approver": r[2],
                        "hashes": r[3] if isinstance(r[3], dict) else json.loads(r[3])} for r in rows}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_approved_request_is_fulfilled_and_downloaded_with_ledger_hashes(cohort_url: str, tmp_path: Path) -> None:
    url = cohort_url
    outbox, exports = tmp_path / "outbox", tmp_path / "exports"
    with psycopg.connect(url, autocommit=True) as conn:
        _id_a, tok_a = create_token(conn, "researcher", timedelta(days=1), project=A)
        _id_b, tok_b = create_token(conn, "researcher", timedelta(days=1), project=B)
    scheduler = Scheduler(serve_config(url, outbox, None, None, pseudonym_key=MASTER_KEY))
    assert scheduler.config.exports_dir == exports
    with TestClient(create_app(url, outbox, exports_dir=exports)) as api:
        made = api.post(f"/v1/projects/{A}/exports", json={"description": "sleep and shifts"}, headers=_auth(tok_a))
        assert made.status_code == 201, made.text
        rid = made.json()["request_id"]
        other = api.post(f"/v1/projects/{B}/exports", json={}, headers=_auth(tok_b)).json()["request_id"]

        scheduler.run_exports()  # nothing approved yet: nothing runs
        assert api.get(f"/v1/projects/{A}/exports/{rid}", headers=_auth(tok_a)).json()["status"] == "requested"
        assert not _ledger(url)

        with psycopg.connect(url, autocommit=True) as conn:
            assert approve_request(conn, rid, "dr-approver")
            assert not approve_request(conn, rid, "dr-approver")  # once
            assert reject_request(conn, other, "no data-sharing agreement yet")
        scheduler.run_exports()

        state = api.get(f"/v1/projects/{A}/exports/{rid}", headers=_auth(tok_a)).json()
        assert state["status"] == "done" and state["n_files"] >= 4, state
        (seq, entry), = _ledger(url).items()
        assert entry["project"] == A and entry["approver"] == "dr-approver"
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT export_seq, files FROM access.export_requests WHERE request_id = %s",
                               (rid,)).fetchone()
        assert row is not None and row[0] == seq
        assert all(f.startswith(f"{A}/{rid}/") for f in row[1])
        assert not outbox.exists() or not any(outbox.rglob("*.*"))  # never in the managers' outbox
        got = {}
        for index, rel in enumerate(row[1]):
            resp = api.get(f"/v1/projects/{A}/exports/{rid}/files/{index}", headers=_auth(tok_a))
            assert resp.status_code == 200
            got[Path(rel).name] = hashlib.sha256(resp.content).hexdigest()
        assert got == entry["hashes"]
        assert api.get(f"/v1/projects/{A}/exports/{rid}/files/{len(row[1])}", headers=_auth(tok_a)).status_code == 404

        # the other project sees neither the request nor its files; its own rejected request says why
        assert api.get(f"/v1/projects/{B}/exports/{rid}", headers=_auth(tok_b)).status_code == 404
        assert api.get(f"/v1/projects/{B}/exports/{rid}/files/0", headers=_auth(tok_b)).status_code == 404
        assert api.get(f"/v1/projects/{A}/exports/{rid}", headers=_auth(tok_b)).status_code == 403
        theirs = api.get(f"/v1/projects/{B}/exports", headers=_auth(tok_b)).json()
        assert [(r["status"], r["detail"]) for r in theirs] == [("rejected", "no data-sharing agreement yet")]

    scheduler.run_exports()  # done stays done: no second export
    assert len(_ledger(url)) == 1


def test_an_export_recorded_before_a_crash_is_attached_not_run_twice(cohort_url: str, tmp_path: Path) -> None:
    url = cohort_url
    exports = tmp_path / "exports"
    with psycopg.connect(url, autocommit=True) as conn:
        token_id, _tok = create_token(conn, "researcher", timedelta(days=1), project=A)
        rid = str(conn.execute("INSERT INTO access.export_requests (project, requested_by) VALUES (%s, %s) "
                               "RETURNING request_id", (A, token_id)).fetchone()[0])  # type: ignore[index]
        assert approve_request(conn, rid, "dr-approver")
        conn.execute("UPDATE access.export_requests SET status = 'running' WHERE request_id = %s", (rid,))
    before = len(_ledger(url))
    # the earlier attempt delivered and recorded the export, then died before marking the request done
    earlier = run_export(url, ExportRequest(A, exports / A / rid, MASTER_KEY, 1, "researcher-token:x",
                                            approver="dr-approver"))
    # and a still earlier one left a half-written folder for another request: removed, then run properly
    with psycopg.connect(url, autocommit=True) as conn:
        rid2 = str(conn.execute("INSERT INTO access.export_requests (project, requested_by) VALUES (%s, %s) "
                                "RETURNING request_id", (A, token_id)).fetchone()[0])  # type: ignore[index]
        assert approve_request(conn, rid2, "dr-approver")
    (exports / A / rid2).mkdir(parents=True)
    (exports / A / rid2 / "participants.parquet").write_bytes(b"half")
    Scheduler(serve_config(url, tmp_path / "outbox", None, None, pseudonym_key=MASTER_KEY)).run_exports()
    with psycopg.connect(url, autocommit=True) as conn:
        rows = dict(conn.execute("SELECT request_id::text, export_seq FROM access.export_requests "
                                 "WHERE request_id = ANY(%s::uuid[]) AND status = 'done'", ([rid, rid2],)).fetchall())
    assert rows[rid] == earlier.ledger_seq  # attached
    assert len(_ledger(url)) == before + 2  # the attached one was not exported again; rid2 ran once
    assert (exports / A / rid2 / "participants.parquet").read_bytes() != b"half"


def test_without_a_pseudonym_key_approved_requests_wait_and_say_why(cohort_url: str, tmp_path: Path) -> None:
    with psycopg.connect(cohort_url, autocommit=True) as conn:
        token_id, _tok = create_token(conn, "researcher", timedelta(days=1), project=A)
        rid = str(conn.execute("INSERT INTO access.export_requests (project, requested_by) VALUES (%s, %s) "
                               "RETURNING request_id", (A, token_id)).fetchone()[0])  # type: ignore[index]
        assert approve_request(conn, rid, "dr-approver")
    Scheduler(serve_config(cohort_url, tmp_path / "outbox", None, None)).run_exports()
    with psycopg.connect(cohort_url, autocommit=True) as conn:
        row = conn.execute("SELECT status, detail FROM access.export_requests WHERE request_id = %s",
                           (rid,)).fetchone()
        conn.execute("UPDATE access.export_requests SET status = 'rejected' WHERE request_id = %s", (rid,))
    assert row is not None and row[0] == "requested" and "FATIGUE_PSEUDONYM_KEY" in row[1]


def test_a_researcher_cannot_insert_an_approved_request(cohort_url: str) -> None:
    with psycopg.connect(cohort_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE fatigue_researcher")
        conn.execute("SELECT set_config('fatigue.project', %s, true)", (A,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO access.export_requests (project, requested_by, approved_by, approved_at) "
                         "VALUES (%s, gen_random_uuid(), 'me', now())", (A,))
