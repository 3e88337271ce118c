-- 030: weekly fatigue flags (with revisions kept for audit) and the managers' weekly reports.
--
-- risk.weekly_flags is a PLAIN table (never a hypertable: RLS is not propagated to TimescaleDB chunks,
-- reliability_security.md 2.2). One row per participant, programme week and revision; exactly one row per
-- participant and week is current (partial unique index). A revision never updates the earlier row's content:
-- the earlier row only loses is_current, and the new row names it in supersedes.
--
-- Row-level security is ENABLED and FORCED (so the owner is filtered too). A session sees a force's rows when
-- it sets fatigue.force_id to that force (SET LOCAL per request in the API), or all rows when it sets
-- fatigue.all_forces = 'on' (the flag job and the report job do this). Superusers bypass RLS as always; the
-- API's manager roles, added by the access migrations, are to be given SELECT only.
CREATE SCHEMA IF NOT EXISTS risk;

CREATE TABLE risk.weekly_flags (
    flag_id            uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    participant_id     uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    force_id           text NOT NULL,  -- denormalised from core.participants for RLS (no FK: hot path)
    programme_week     smallint NOT NULL CHECK (programme_week BETWEEN 1 AND 52),
    week_start         date NOT NULL,
    week_end           date NOT NULL,
    overall_level      text NOT NULL CHECK (overall_level IN ('green', 'amber', 'red', 'insufficient_data')),
    criteria           jsonb NOT NULL,
    programme_version  text NOT NULL,
    algorithm_version  text NOT NULL,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    revision           integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    supersedes         uuid REFERENCES risk.weekly_flags (flag_id),
    is_current         boolean NOT NULL DEFAULT true,
    PRIMARY KEY (participant_id, programme_week, revision),
    CHECK (week_end = week_start + 6),
    CHECK ((revision = 1) = (supersedes IS NULL))
);
CREATE UNIQUE INDEX weekly_flags_current_idx ON risk.weekly_flags (participant_id, programme_week)
    WHERE is_current;
CREATE INDEX weekly_flags_force_week_idx ON risk.weekly_flags (force_id, week_end) WHERE is_current;

ALTER TABLE risk.weekly_flags ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk.weekly_flags FORCE ROW LEVEL SECURITY;
CREATE POLICY weekly_flags_force ON risk.weekly_flags
    USING (force_id = current_setting('fatigue.force_id', true)
           OR current_setting('fatigue.all_forces', true) = 'on')
    WITH CHECK (force_id = current_setting('fatigue.force_id', true)
                OR current_setting('fatigue.all_forces', true) = 'on');

-- One row per flag-job run: what was evaluated and written (no personal data).
CREATE TABLE risk.flag_runs (
    run_id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    as_of              date NOT NULL,
    programme_version  text NOT NULL,
    algorithm_version  text NOT NULL,
    evaluated          integer NOT NULL,
    issued             integer NOT NULL,
    revised            integer NOT NULL,
    unchanged          integer NOT NULL,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL DEFAULT now()
);

-- Weekly reports per force (ISO week of the flags' week_end). Paths are relative to the outbox folder.
CREATE TABLE risk.reports (
    report_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    force_id        text NOT NULL REFERENCES core.forces,
    iso_week        text NOT NULL CHECK (iso_week ~ '^[0-9]{4}-W[0-9]{2}$'),
    week_start      date NOT NULL,
    week_end        date NOT NULL,
    html_path       text NOT NULL,
    csv_paths       text[] NOT NULL DEFAULT '{}',
    n_officers      integer NOT NULL,
    notified_mqtt   boolean NOT NULL DEFAULT false,
    emailed_to      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_force_week_idx ON risk.reports (force_id, iso_week);

ALTER TABLE risk.reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk.reports FORCE ROW LEVEL SECURITY;
CREATE POLICY reports_force ON risk.reports
    USING (force_id = current_setting('fatigue.force_id', true)
           OR current_setting('fatigue.all_forces', true) = 'on')
    WITH CHECK (force_id = current_setting('fatigue.force_id', true)
                OR current_setting('fatigue.all_forces', true) = 'on');

-- Who receives a force's weekly report by e-mail (addresses of the force's fatigue-risk managers).
CREATE TABLE risk.report_recipients (
    force_id  text NOT NULL REFERENCES core.forces,
    email     text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    PRIMARY KEY (force_id, email)
);
