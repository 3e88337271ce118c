-- 120: reads built for scale (issue 22) and the small state of the incremental feature job.
--
-- Every feature/model job batch reads a few participants over a time window. Without an index on
-- participant_id each batch scanned and sorted whole raw tables. These indexes let a batch read only its
-- participants and time window; on a natively partitioned table CREATE INDEX on the parent creates the index
-- on every partition (and on partitions added later); on a TimescaleDB hypertable it is created on every chunk.
-- end_ts is a key column so that an overlap read (start_ts in [s - longest run, e) AND end_ts > s) filters in the
-- index and visits the heap only for rows it returns.
CREATE INDEX IF NOT EXISTS hr_runs_participant_time_idx ON raw.hr_runs (participant_id, start_ts, end_ts);
CREATE INDEX IF NOT EXISTS rr_runs_participant_time_idx ON raw.rr_runs (participant_id, start_ts, end_ts);
CREATE INDEX IF NOT EXISTS sleep_episodes_participant_time_idx
    ON raw.sleep_episodes (participant_id, start_ts, end_ts);
CREATE INDEX IF NOT EXISTS device_status_participant_time_idx ON raw.device_status (participant_id, ts);
CREATE INDEX IF NOT EXISTS survey_answers_participant_time_idx ON raw.survey_answers (participant_id, ts);

-- TimescaleDB: compressed chunks are segmented by participant as well as device, so a batch decompresses
-- only its participants' segments. Changing the setting fails while compressed chunks exist (older
-- TimescaleDB versions); the indexes above still serve the uncompressed chunks then, and the failure is
-- reported as a notice rather than blocking the migration.
DO $$
DECLARE
    t text;
BEGIN
    IF (SELECT mode FROM store.storage_mode) = 'timescaledb' THEN
        FOREACH t IN ARRAY ARRAY['raw.hr_runs', 'raw.rr_runs', 'raw.sleep_episodes'] LOOP
            BEGIN
                EXECUTE format('ALTER TABLE %s SET (timescaledb.compress, timescaledb.compress_segmentby = '
                               '''participant_id, device_id'', timescaledb.compress_orderby = ''start_ts'')', t);
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'segmentby of % unchanged: %', t, SQLERRM;
            END;
        END LOOP;
    END IF;
END $$;

-- Small per-day state of the incremental feature job that derived.daily_features does not hold: the Sleep
-- Regularity Index epoch pairs of block pair (d - 1, d) (features.regularity.pair_agreement), in epochs.
-- With these and the stored daily rows, a new night updates the 14-day SRI and 4-day consistency windows
-- without reading earlier raw data.
CREATE TABLE derived.daily_state (
    participant_id  uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    sleep_date      date NOT NULL,
    pair_match      float8 NOT NULL,
    pair_valid      float8 NOT NULL,
    PRIMARY KEY (participant_id, sleep_date)
);
