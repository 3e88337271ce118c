-- 080 (issue 17): sample-level idempotence for runs, revisions of sleep episodes, written counts in the ledger.
--
-- 1. Overlap lookups. A heart-rate or RR run that arrives under a new msg_id may repeat samples already stored
--    in other runs (a gateway re-batches: 60 samples from T, then 120 samples from T). The writer finds the
--    stored runs of the same device whose time span overlaps the new run's, with a GiST index on
--    (device_id, [start_ts, end_ts)), and stores only the samples not yet stored (ingest/writer.py). btree_gist
--    is a trusted contrib extension (PostgreSQL 13+). Under TimescaleDB the index is created on the
--    hypertable and propagates to its chunks (compressed chunks are scanned without it).
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX IF NOT EXISTS hr_runs_span_idx ON raw.hr_runs USING gist (device_id, tstzrange(start_ts, end_ts));
CREATE INDEX IF NOT EXISTS rr_runs_span_idx ON raw.rr_runs USING gist (device_id, tstzrange(start_ts, end_ts));

-- 2. Sleep-episode revisions. raw.sleep_episodes holds the current version of each (device_id, start_ts); a
--    changed episode under a new msg_id replaces it there, and the version it replaces is kept here for audit
--    with the msg_id that superseded it. A plain table: revisions are rare and small.
CREATE TABLE raw.sleep_episode_revisions (
    revision_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       text NOT NULL,
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz NOT NULL,
    participant_id  uuid NOT NULL,
    in_bed          boolean NOT NULL,
    epoch_s         smallint NOT NULL,
    stages          smallint[],
    device_tst_min  real,
    msg_id          uuid NOT NULL,
    ingested_at     timestamptz NOT NULL,
    superseded_by   uuid NOT NULL,
    superseded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sleep_episode_revisions_key_idx ON raw.sleep_episode_revisions (device_id, start_ts);

-- 3. The ledger records how many samples (runs: samples; sleep: episodes inserted or revised; status and
--    survey: rows) each message actually wrote, so that the ledger total equals what the raw tables hold.
--    NULL for messages ingested before this migration.
ALTER TABLE ingest.message_ledger ADD COLUMN samples_written integer;

GRANT SELECT, INSERT ON raw.sleep_episode_revisions TO fatigue_ingest;
GRANT UPDATE ON raw.sleep_episodes TO fatigue_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA raw TO fatigue_ingest;
GRANT SELECT ON raw.sleep_episode_revisions TO fatigue_jobs;
GRANT SELECT, DELETE ON raw.sleep_episode_revisions TO fatigue_admin;
