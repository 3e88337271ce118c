-- 060: what a manager may see (one view), and an API whose login role cannot widen its own scope.
--
-- 1. risk.manager_flags: the ONE definition of "what a manager may see", read by the HTTP API and by the weekly
--    report alike: current flags, with the staff reference only for officers who consented to be named and have
--    not withdrawn (named). Per-officer rows leave the database only WHERE named; the rest feed aggregates that
--    go through risk.disclosure (docs/security.md, "Disclosure control"). A withdrawn officer is never named
--    again and has no flag from the withdrawal on; flags of weeks that ended before it stay in those weeks'
--    counts, so a later report cannot be differenced with an earlier one to recover the officer's levels.
--
-- 2. Request scope bound to the token (docs/security.md, "Least privilege"). The API logs in as fatigue_web
--    (NOINHERIT; managers and researchers) or fatigue_web_admin (administrators only). fatigue_web may switch
--    only into fatigue_web_manager / fatigue_web_researcher, whose row-level security checks the scope that
--    access.open_scope(token_sha256) recorded for this backend and this transaction in access.request_scope.
--    The login role cannot write that table, cannot read token hashes, and open_scope runs once per
--    transaction, so neither SET ROLE, set_config, RESET nor a second open_scope reaches another force.
--    The 050 roles (fatigue_api, fatigue_manager, ...) are left as they are (roles are cluster-wide and shared);
--    deployments move the API to fatigue_web and then REVOKE fatigue_admin FROM fatigue_api.

CREATE VIEW risk.manager_flags WITH (security_invoker = true) AS
SELECT f.flag_id, f.participant_id, f.force_id, f.programme_week, f.week_start, f.week_end, f.overall_level,
       f.criteria, f.revision, f.issued_at, w.named, CASE WHEN w.named THEN i.staff_ref END AS staff_ref
FROM risk.weekly_flags f
JOIN core.participants p ON p.participant_id = f.participant_id
CROSS JOIN LATERAL (SELECT p.consent_manager AND (p.withdrawn_at IS NULL OR p.withdrawn_at > now())) w(named)
LEFT JOIN core.identities i ON i.participant_id = f.participant_id AND w.named
WHERE f.is_current AND (p.withdrawn_at IS NULL OR f.week_end < p.withdrawn_at::date);

-- The scope of the current request: one row per backend, valid only inside the transaction that wrote it.
CREATE TABLE access.request_scope (
    backend_pid  integer PRIMARY KEY,
    xact         xid8 NOT NULL,
    token_id     uuid NOT NULL,
    role         text NOT NULL,
    force_id     text,
    project      text
);
REVOKE ALL ON access.request_scope FROM PUBLIC;

-- Roles (cluster-wide): create when absent, refuse a pre-existing superuser or BYPASSRLS role.
DO $$
DECLARE
    spec text[];
    specs text[] := ARRAY[
        ARRAY['fatigue_web_manager', 'NOLOGIN'], ARRAY['fatigue_web_researcher', 'NOLOGIN'],
        ARRAY['fatigue_web', 'LOGIN NOINHERIT'], ARRAY['fatigue_web_admin', 'LOGIN NOINHERIT']];
    grants text[] := ARRAY[
        ARRAY['fatigue_web_manager', 'fatigue_web'], ARRAY['fatigue_web_researcher', 'fatigue_web'],
        ARRAY['fatigue_admin', 'fatigue_web_admin']];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY specs LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE',
                               spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1] AND (rolsuper OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % exists and is a superuser or bypasses RLS; fix it before migrating', spec[1];
        END IF;
    END LOOP;
    FOREACH spec SLICE 1 IN ARRAY grants LOOP
        IF NOT pg_has_role(spec[2], spec[1], 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    IF pg_has_role('fatigue_web', 'fatigue_admin', 'MEMBER')
       OR pg_has_role('fatigue_web', 'fatigue_manager', 'MEMBER') THEN
        RAISE EXCEPTION 'fatigue_web must not be a member of fatigue_admin or fatigue_manager';
    END IF;
END $$;

-- A token's principal, if usable (the API login roles may not read token hashes themselves).
CREATE FUNCTION access.token_principal(digest bytea)
RETURNS TABLE (token_id uuid, role text, force_id text, project text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.token_id, t.role, t.force_id, t.project FROM access.tokens t
    WHERE t.token_sha256 = digest AND t.revoked_at IS NULL AND t.expires_at > now()
$$;

-- Bind this transaction to the token's scope; once per transaction. Sets fatigue.force_id / fatigue.project
-- locally as well (for the 030/050 policies), but the web roles' policies trust only access.request_scope.
CREATE FUNCTION access.open_scope(digest bytea) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    IF EXISTS (SELECT 1 FROM access.request_scope s
               WHERE s.backend_pid = pg_backend_pid() AND s.xact = pg_current_xact_id()) THEN
        RAISE EXCEPTION 'the request scope is already set in this transaction' USING ERRCODE = '42501';
    END IF;
    SELECT * INTO p FROM access.token_principal(digest);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invalid, expired or revoked token' USING ERRCODE = '28000';
    END IF;
    DELETE FROM access.request_scope WHERE backend_pid = pg_backend_pid();
    INSERT INTO access.request_scope VALUES (pg_backend_pid(), pg_current_xact_id(), p.token_id, p.role,
                                             p.force_id, p.project);
    PERFORM set_config('fatigue.force_id', coalesce(p.force_id, ''), true),
            set_config('fatigue.project', coalesce(p.project, ''), true);
    RETURN p.role;
END $$;

-- The force (manager) or project (researcher) bound to this transaction, else NULL.
CREATE FUNCTION access.scope_force() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.force_id FROM access.request_scope s
    WHERE s.backend_pid = pg_backend_pid() AND s.xact = pg_current_xact_id_if_assigned() AND s.role = 'manager'
$$;
CREATE FUNCTION access.scope_project() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.project FROM access.request_scope s
    WHERE s.backend_pid = pg_backend_pid() AND s.xact = pg_current_xact_id_if_assigned()
      AND s.role = 'researcher'
$$;
REVOKE ALL ON FUNCTION access.token_principal(bytea), access.open_scope(bytea), access.scope_force(),
    access.scope_project() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION access.token_principal(bytea), access.open_scope(bytea)
    TO fatigue_web, fatigue_web_admin, fatigue_api;
GRANT EXECUTE ON FUNCTION access.scope_force() TO fatigue_web_manager;
GRANT EXECUTE ON FUNCTION access.scope_project() TO fatigue_web_researcher;

-- Login roles of the API: schema usage, audit inserts, nothing else.
GRANT USAGE ON SCHEMA access TO fatigue_web, fatigue_web_admin;
GRANT INSERT ON access.audit_log TO fatigue_web, fatigue_web_admin;
-- fatigue_api (050) keeps working through token_principal but may no longer read token hashes.
REVOKE SELECT ON access.tokens FROM fatigue_api;
REVOKE SELECT (token_sha256) ON access.tokens FROM fatigue_api;

-- Manager of one force (bound by access.request_scope): the view and the tables under it, reports.
GRANT USAGE ON SCHEMA core, risk, access TO fatigue_web_manager;
GRANT SELECT ON core.participants, core.identities, risk.weekly_flags, risk.reports, risk.manager_flags
    TO fatigue_web_manager;
GRANT INSERT ON access.audit_log TO fatigue_web_manager;
GRANT SELECT ON risk.manager_flags TO fatigue_manager, fatigue_jobs, fatigue_admin;

CREATE POLICY participants_web ON core.participants AS RESTRICTIVE TO fatigue_web_manager
    USING (force_id = access.scope_force());
CREATE POLICY identities_web ON core.identities AS RESTRICTIVE TO fatigue_web_manager
    USING (force_id = access.scope_force()
           AND EXISTS (SELECT 1 FROM core.participants p
                       WHERE p.participant_id = identities.participant_id AND p.consent_manager));
CREATE POLICY weekly_flags_web ON risk.weekly_flags AS RESTRICTIVE TO fatigue_web_manager
    USING (force_id = access.scope_force());
CREATE POLICY reports_web ON risk.reports AS RESTRICTIVE TO fatigue_web_manager
    USING (force_id = access.scope_force());

-- Researcher of one project (bound by access.request_scope).
GRANT USAGE ON SCHEMA access TO fatigue_web_researcher;
GRANT SELECT, INSERT ON access.export_requests TO fatigue_web_researcher;
GRANT INSERT ON access.audit_log TO fatigue_web_researcher;
CREATE POLICY export_requests_web ON access.export_requests TO fatigue_web_researcher
    USING (project = access.scope_project())
    WITH CHECK (project = access.scope_project() AND status = 'requested');
