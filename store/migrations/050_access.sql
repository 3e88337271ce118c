-- 050: access control. API tokens (hashes only), the audit log, researchers' export requests, database roles,
-- grants and row-level security (reliability_security.md section 2; docs/security.md).
--
-- Roles are cluster-wide, so they are created only when absent (and the migration refuses to continue if an
-- existing one is a superuser or bypasses RLS). Grants, policies and default privileges are per database.
--
--   fatigue_ingest      LOGIN    the MQTT ingester: INSERT/SELECT on raw.* and ingest.*, SELECT on core assignments
--   fatigue_jobs        LOGIN    feature, model, flag, report and export jobs
--   fatigue_api         LOGIN    the HTTP API: NOINHERIT, owns nothing; reads tokens, writes audit rows, and
--                                switches per transaction (SET LOCAL ROLE) into one of:
--   fatigue_manager     NOLOGIN  one force, chosen by SET LOCAL fatigue.force_id from the token's scope
--   fatigue_researcher  NOLOGIN  one project, chosen by SET LOCAL fatigue.project from the token's scope
--   fatigue_admin       NOLOGIN  programme administration (enrolment, withdrawal, erasure, tokens)
--
-- Row-level security is ENABLED and FORCED on the plain tables that carry force-scoped or identifying data.
-- It is never put on raw.* (hypertables under TimescaleDB; policies do not reach chunks): managers and
-- researchers get no privilege on raw.* at all.
CREATE SCHEMA IF NOT EXISTS access;

CREATE TABLE access.tokens (
    token_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    role          text NOT NULL CHECK (role IN ('manager', 'researcher', 'admin')),
    force_id      text REFERENCES core.forces,
    project       text CHECK (project ~ '^[A-Za-z0-9_-]{1,64}$'),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK ((role = 'manager') = (force_id IS NOT NULL)),
    CHECK ((role = 'researcher') = (project IS NOT NULL)),
    CHECK (expires_at > created_at)
);

-- Who (token id and role, never the token), what (route template and action), which force or project, when,
-- how many rows. No personal data. Insert-only for every application role.
CREATE TABLE access.audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    uuid,
    role        text NOT NULL,
    action      text NOT NULL CHECK (action ~ '^[a-z_]{1,32}$'),
    resource    text NOT NULL CHECK (length(resource) <= 200),
    force_id    text,
    project     text,
    outcome     text NOT NULL DEFAULT 'allowed' CHECK (outcome IN ('allowed', 'denied')),
    row_count   integer NOT NULL DEFAULT 0
);
CREATE INDEX audit_log_at_idx ON access.audit_log (at);

-- A researcher's export request; the export job fulfils it and stores the files (paths relative to the
-- API's outbox folder) with status 'done'.
CREATE TABLE access.export_requests (
    request_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project       text NOT NULL CHECK (project ~ '^[A-Za-z0-9_-]{1,64}$'),
    requested_by  uuid NOT NULL,
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    status        text NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'running', 'done', 'failed', 'rejected')),
    files         text[] NOT NULL DEFAULT '{}',
    detail        text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX export_requests_project_idx ON access.export_requests (project, requested_at);

-- Roles (cluster-wide): create when absent; refuse a pre-existing superuser or BYPASSRLS role.
DO $$
DECLARE
    spec text[];
    specs text[] := ARRAY[
        ARRAY['fatigue_manager', 'NOLOGIN'], ARRAY['fatigue_researcher', 'NOLOGIN'],
        ARRAY['fatigue_admin', 'NOLOGIN'], ARRAY['fatigue_ingest', 'LOGIN'],
        ARRAY['fatigue_jobs', 'LOGIN'], ARRAY['fatigue_api', 'LOGIN NOINHERIT']];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY specs LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE',
                               spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by a migration of another database
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1] AND (rolsuper OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % exists and is a superuser or bypasses RLS; fix it before migrating', spec[1];
        END IF;
    END LOOP;
    FOREACH spec SLICE 1 IN ARRAY ARRAY[ARRAY['fatigue_manager'], ARRAY['fatigue_researcher'],
                                        ARRAY['fatigue_admin']] LOOP
        IF NOT pg_has_role('fatigue_api', spec[1], 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO fatigue_api', spec[1]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- Nothing for PUBLIC in our schemas (PUBLIC has no table rights by default; make the schemas explicit).
REVOKE ALL ON SCHEMA core, raw, ingest, store, access FROM PUBLIC;

-- Ingester.
GRANT USAGE ON SCHEMA core, raw, ingest, store TO fatigue_ingest;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA raw TO fatigue_ingest;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ingest TO fatigue_ingest;
GRANT DELETE ON ingest.quarantine TO fatigue_ingest;
GRANT SELECT ON core.gateways, core.devices, core.device_assignments, core.participants TO fatigue_ingest;
GRANT SELECT ON store.storage_mode, store.timeseries_tables TO fatigue_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA raw, ingest TO fatigue_ingest;

-- Jobs: read the inputs, write derived/risk/exports, fulfil export requests.
GRANT USAGE ON SCHEMA core, raw, ingest, store, access TO fatigue_jobs;
GRANT SELECT ON ALL TABLES IN SCHEMA core, raw, store TO fatigue_jobs;
GRANT SELECT, DELETE ON ingest.dirty_days TO fatigue_jobs;
GRANT SELECT, UPDATE ON access.export_requests TO fatigue_jobs;
GRANT INSERT ON access.audit_log TO fatigue_jobs;

-- API login role: token lookup and audit rows only; everything else through SET LOCAL ROLE.
GRANT USAGE ON SCHEMA access TO fatigue_api;
GRANT SELECT (token_id, token_sha256, role, force_id, project, expires_at, revoked_at)
    ON access.tokens TO fatigue_api;
GRANT INSERT ON access.audit_log TO fatigue_api;

-- Manager: own force's participants (for joins), consenting identities, flags and reports. Nothing on raw.
GRANT USAGE ON SCHEMA core, access TO fatigue_manager;
GRANT SELECT ON core.participants, core.identities TO fatigue_manager;
GRANT INSERT ON access.audit_log TO fatigue_manager;

-- Researcher: own project's export requests only.
GRANT USAGE ON SCHEMA access TO fatigue_researcher;
GRANT SELECT, INSERT ON access.export_requests TO fatigue_researcher;
GRANT INSERT ON access.audit_log TO fatigue_researcher;

-- Administrator: enrolment, withdrawal, erasure (deletes from every participant table), tokens.
GRANT USAGE ON SCHEMA core, raw, ingest, store, access TO fatigue_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA core TO fatigue_admin;
GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA raw, ingest TO fatigue_admin;
GRANT SELECT, INSERT, UPDATE ON access.tokens TO fatigue_admin;
GRANT SELECT ON access.export_requests, access.audit_log TO fatigue_admin;
GRANT INSERT ON access.audit_log TO fatigue_admin;

-- Schemas of later areas (derived, risk, exports): grant what exists now, and default privileges for the
-- tables that migrations run by this owner create later.
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['derived', 'risk', 'exports'] LOOP
        IF to_regnamespace(s) IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO fatigue_jobs, fatigue_admin', s);
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO fatigue_jobs', s);
            EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO fatigue_jobs', s);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE '
                           'ON TABLES TO fatigue_jobs', s);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE ON SEQUENCES TO fatigue_jobs', s);
        END IF;
    END LOOP;
    FOREACH s IN ARRAY ARRAY['derived', 'risk'] LOOP
        IF to_regnamespace(s) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA %I TO fatigue_admin', s);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, DELETE ON TABLES TO fatigue_admin',
                           s);
        END IF;
    END LOOP;
    IF to_regnamespace('exports') IS NOT NULL THEN
        -- The export ledger is insert-only (reliability_security.md 2.4).
        EXECUTE 'REVOKE UPDATE, DELETE ON ALL TABLES IN SCHEMA exports FROM fatigue_jobs';
    END IF;
    IF to_regnamespace('risk') IS NOT NULL THEN
        EXECUTE 'GRANT USAGE ON SCHEMA risk TO fatigue_manager';
    END IF;
    IF to_regclass('risk.weekly_flags') IS NOT NULL THEN
        EXECUTE 'GRANT SELECT ON risk.weekly_flags TO fatigue_manager';
    END IF;
    IF to_regclass('risk.reports') IS NOT NULL THEN
        EXECUTE 'GRANT SELECT ON risk.reports TO fatigue_manager';
    END IF;
END $$;

-- Row-level security on participants and identities (the risk tables have it from 030).
ALTER TABLE core.participants ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.participants FORCE ROW LEVEL SECURITY;
ALTER TABLE core.identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.identities FORCE ROW LEVEL SECURITY;

-- Same rule as risk.* (030): a session sees one force, or all forces with fatigue.all_forces = 'on'.
CREATE POLICY participants_force ON core.participants
    USING (force_id = current_setting('fatigue.force_id', true)
           OR current_setting('fatigue.all_forces', true) = 'on');
CREATE POLICY identities_force ON core.identities
    USING (force_id = current_setting('fatigue.force_id', true)
           OR current_setting('fatigue.all_forces', true) = 'on');
-- The service roles that work on the whole cohort.
CREATE POLICY participants_service ON core.participants TO fatigue_admin, fatigue_jobs USING (true) WITH CHECK (true);
CREATE POLICY participants_ingest ON core.participants FOR SELECT TO fatigue_ingest USING (true);
CREATE POLICY identities_service ON core.identities TO fatigue_admin, fatigue_jobs USING (true) WITH CHECK (true);

-- Managers: RESTRICTIVE policies (AND-ed with the permissive ones) pin them to fatigue.force_id, so setting
-- fatigue.all_forces cannot widen a manager's view; identities only of participants who consented.
CREATE POLICY participants_manager ON core.participants AS RESTRICTIVE TO fatigue_manager
    USING (force_id = current_setting('fatigue.force_id', true));
CREATE POLICY identities_manager ON core.identities AS RESTRICTIVE TO fatigue_manager
    USING (force_id = current_setting('fatigue.force_id', true)
           AND EXISTS (SELECT 1 FROM core.participants p
                       WHERE p.participant_id = identities.participant_id AND p.consent_manager));

DO $$
BEGIN
    IF to_regclass('risk.weekly_flags') IS NOT NULL THEN
        ALTER TABLE risk.weekly_flags ENABLE ROW LEVEL SECURITY;
        ALTER TABLE risk.weekly_flags FORCE ROW LEVEL SECURITY;
        CREATE POLICY weekly_flags_manager ON risk.weekly_flags AS RESTRICTIVE TO fatigue_manager
            USING (force_id = current_setting('fatigue.force_id', true));
        CREATE POLICY weekly_flags_admin ON risk.weekly_flags TO fatigue_admin USING (true);
    END IF;
    IF to_regclass('risk.reports') IS NOT NULL THEN
        ALTER TABLE risk.reports ENABLE ROW LEVEL SECURITY;
        ALTER TABLE risk.reports FORCE ROW LEVEL SECURITY;
        CREATE POLICY reports_manager ON risk.reports AS RESTRICTIVE TO fatigue_manager
            USING (force_id = current_setting('fatigue.force_id', true));
        CREATE POLICY reports_admin ON risk.reports TO fatigue_admin USING (true);
    END IF;
END $$;

-- Export requests: a researcher sees and creates only the project in fatigue.project; jobs and admin see all.
-- Enabled, not forced: the table holds no force-scoped or identifying data, and the owner (the export job when
-- it runs as the migrating role) must keep seeing every request.
ALTER TABLE access.export_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY export_requests_project ON access.export_requests TO fatigue_researcher
    USING (project = current_setting('fatigue.project', true))
    WITH CHECK (project = current_setting('fatigue.project', true) AND status = 'requested');
CREATE POLICY export_requests_service ON access.export_requests TO fatigue_jobs, fatigue_admin
    USING (true) WITH CHECK (true);
