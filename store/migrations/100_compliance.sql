-- 100: programme compliance (issue 21): incremental state, per participant-day wear, levels and alert episodes.
-- Written by `fatigue compliance` (compliance.job); read by the CLI, the admin API and the weekly report.
-- Every table with participant data carries participant_id so that erasure (store.enrolment) finds it.
CREATE SCHEMA IF NOT EXISTS compliance;
REVOKE ALL ON SCHEMA compliance FROM PUBLIC;

-- How far the raw tables have been read (ingested_at), so each run reads only what is new.
CREATE TABLE compliance.watermark (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    ingested_through  timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Last message per stream (data time) and last status of each device.
CREATE TABLE compliance.device_state (
    device_id       text PRIMARY KEY,
    participant_id  uuid,
    gateway_id      text,
    last_hr_ts      timestamptz,
    last_rr_ts      timestamptz,
    last_sleep_ts   timestamptz,
    last_status_ts  timestamptz,
    last_survey_ts  timestamptz,
    battery_pct     smallint,
    worn            boolean,
    online          boolean,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Per participant and local day: minutes covered by heart-rate samples (minus time a status said "not worn"),
-- NULL when no heart-rate sample fell on the day (no wear signal), and sleep episodes ending that day. A row
-- exists only for days with data; no row means no data.
CREATE TABLE compliance.daily (
    participant_id  uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    day             date NOT NULL,
    wear_min        real,
    sleep_episodes  smallint NOT NULL DEFAULT 0,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, day)
);

-- The latest evaluation of each participant (one row each, replaced on every run).
CREATE TABLE compliance.participant_state (
    participant_id          uuid PRIMARY KEY REFERENCES core.participants ON DELETE CASCADE,
    force_id                text NOT NULL,
    device_id               text,
    level                   text NOT NULL CHECK (level IN ('ok', 'watch', 'lapsed')),
    reasons                 text[] NOT NULL DEFAULT '{}',
    last_seen_ts            timestamptz,
    last_worn_ts            timestamptz,
    silent_h                real,
    battery_pct             smallint,
    worn                    boolean,
    online                  boolean,
    wear_h_today            real,
    wear_h_7d               real,
    nights_sleep_7d         smallint NOT NULL,
    valid_nights_7d         smallint NOT NULL,
    expected_nights_7d      smallint NOT NULL,
    days_since_valid_night  integer,
    evaluated_at            timestamptz NOT NULL
);
CREATE INDEX participant_state_force_idx ON compliance.participant_state (force_id);

-- Alert episodes: one row per (participant, kind) from the run that saw the condition start to the run that saw
-- it end. published_* and notified_* record delivery so that a failed delivery is retried, never repeated.
CREATE TABLE compliance.alert_episodes (
    episode_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id      uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    device_id           text,
    gateway_id          text,
    kind                text NOT NULL CHECK (kind IN ('silent', 'battery', 'nights')),
    opened_at           timestamptz NOT NULL,
    value_at_open       real,
    closed_at           timestamptz,
    published_open_at   timestamptz,
    published_close_at  timestamptz,
    notified_open_at    timestamptz,
    notified_close_at   timestamptz
);
CREATE UNIQUE INDEX alert_episodes_one_open ON compliance.alert_episodes (participant_id, kind)
    WHERE closed_at IS NULL;

-- Jobs write everything here; administrators read (the admin API names officers); nobody else.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fatigue_jobs') THEN
        GRANT USAGE ON SCHEMA compliance TO fatigue_jobs;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA compliance TO fatigue_jobs;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fatigue_admin') THEN
        GRANT USAGE ON SCHEMA compliance TO fatigue_admin;
        GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA compliance TO fatigue_admin;
    END IF;
END $$;
