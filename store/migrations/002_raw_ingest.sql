-- 002: raw sensor streams and the ingest bookkeeping tables.
--
-- Row shape (design.md section 4): heart rate and RR intervals are stored as *runs*, one row per device and
-- contiguous run (one message), with the samples as arrays. A binary COPY of one row per sample costs the
-- server about 2.1 us per row, most of it in the unique index; a run of 60-3,600 samples pays that once.
-- Replaying a message is absorbed by the ledger (same msg_id) and by the natural key (device_id, start_ts);
-- readers de-duplicate samples by (device_id, sample time) so that differently chunked replays of the same
-- samples never double anything computed from them.
--
-- Storage: store.make_timeseries() turns each table into a TimescaleDB hypertable with compression and
-- retention when the extension is available, and otherwise into a native range-partitioned table with a
-- DEFAULT partition, so that no insert can ever fail for lack of a partition.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE SCHEMA IF NOT EXISTS store;

CREATE TABLE store.storage_mode (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mode        text NOT NULL CHECK (mode IN ('timescaledb', 'partitioned')),
    detail      text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE store.timeseries_tables (
    table_name   text PRIMARY KEY,
    time_column  text NOT NULL
);

-- Create (or extend) monthly partitions [from, to) of a natively partitioned table. Rows that had landed in
-- the DEFAULT partition for a new month are moved into it, so partitions can be added at any time.
CREATE FUNCTION store.ensure_partitions(p_table text, p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', p_from)::date;
    created integer := 0;
    part text;
    tcol text;
    has_rows boolean;
BEGIN
    SELECT time_column INTO STRICT tcol FROM store.timeseries_tables WHERE table_name = p_table;
    WHILE m < p_to LOOP
        part := p_table || '_p' || to_char(m, 'YYYYMM');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s_default WHERE %I >= %L AND %I < %L)',
                           p_table, tcol, m, tcol, (m + interval '1 month')::date) INTO has_rows;
            IF has_rows THEN
                EXECUTE format('CREATE TEMP TABLE _moving ON COMMIT DROP AS SELECT * FROM %s_default '
                               'WHERE %I >= %L AND %I < %L', p_table, tcol, m, tcol,
                               (m + interval '1 month')::date);
                EXECUTE format('DELETE FROM %s_default WHERE %I >= %L AND %I < %L', p_table, tcol, m, tcol,
                               (m + interval '1 month')::date);
            END IF;
            EXECUTE format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           part, p_table, m, (m + interval '1 month')::date);
            IF has_rows THEN
                EXECUTE format('INSERT INTO %s SELECT * FROM _moving', p_table);
                DROP TABLE _moving;
            END IF;
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

-- Create a time-series table from its column list, as a hypertable or as a partitioned table.
CREATE FUNCTION store.make_timeseries(p_table text, p_columns text, p_key text, p_time text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    mode text;
BEGIN
    SELECT s.mode INTO STRICT mode FROM store.storage_mode s;
    INSERT INTO store.timeseries_tables VALUES (p_table, p_time);
    IF mode = 'timescaledb' THEN
        EXECUTE format('CREATE TABLE %s (%s, PRIMARY KEY (%s))', p_table, p_columns, p_key);
        EXECUTE format('SELECT create_hypertable(%L, %L, chunk_time_interval => interval ''7 days'')',
                       p_table, p_time);
        EXECUTE format('ALTER TABLE %s SET (timescaledb.compress, timescaledb.compress_segmentby = ''device_id'')',
                       p_table);
        EXECUTE format('SELECT add_compression_policy(%L, interval ''7 days'')', p_table);
        -- The study keeps raw data for the 120-day programme plus a year for re-analysis.
        EXECUTE format('SELECT add_retention_policy(%L, interval ''485 days'')', p_table);
    ELSE
        EXECUTE format('CREATE TABLE %s (%s, PRIMARY KEY (%s)) PARTITION BY RANGE (%I)',
                       p_table, p_columns, p_key, p_time);
        EXECUTE format('CREATE TABLE %s_default PARTITION OF %s DEFAULT', p_table, p_table);
        PERFORM store.ensure_partitions(p_table, (now() - interval '13 months')::date,
                                        (now() + interval '3 months')::date);
    END IF;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        INSERT INTO store.storage_mode (mode, detail)
        SELECT 'timescaledb', 'timescaledb ' || extversion FROM pg_extension WHERE extname = 'timescaledb';
    ELSE
        INSERT INTO store.storage_mode (mode, detail)
        VALUES ('partitioned', 'timescaledb extension not available; native monthly range partitions '
                               'with a DEFAULT partition');
    END IF;
END $$;

-- Heart rate: one row per run; sample i is at start_ts + offsets_ms[i] milliseconds.
SELECT store.make_timeseries('raw.hr_runs', $c$
    device_id       text NOT NULL,
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz NOT NULL,
    participant_id  uuid NOT NULL,
    offsets_ms      integer[] NOT NULL,
    bpm             smallint[] NOT NULL,
    suspect         boolean[] NOT NULL,
    msg_id          uuid NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
$c$, 'device_id, start_ts', 'start_ts');

-- RR intervals: one row per run of consecutive beats; beat i ends at start_ts + sum(rr_ms[1..i]).
-- Intervals outside 200-3,000 ms are kept with artifact = true and excluded from HRV.
SELECT store.make_timeseries('raw.rr_runs', $c$
    device_id       text NOT NULL,
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz NOT NULL,
    participant_id  uuid NOT NULL,
    rr_ms           smallint[] NOT NULL,
    artifact        boolean[] NOT NULL,
    msg_id          uuid NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
$c$, 'device_id, start_ts', 'start_ts');

-- Sleep episodes; stages are 30-s epochs coded 0 wake, 1 light, 2 deep, 3 REM (NULL when not supplied).
-- in_bed is true when start_ts is a true bedtime (then SOL is computable), false when it is sleep onset.
SELECT store.make_timeseries('raw.sleep_episodes', $c$
    device_id       text NOT NULL,
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz NOT NULL,
    participant_id  uuid NOT NULL,
    in_bed          boolean NOT NULL,
    epoch_s         smallint NOT NULL DEFAULT 30,
    stages          smallint[],
    device_tst_min  real,
    msg_id          uuid NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
$c$, 'device_id, start_ts', 'start_ts');

SELECT store.make_timeseries('raw.device_status', $c$
    device_id       text NOT NULL,
    ts              timestamptz NOT NULL,
    participant_id  uuid,
    battery_pct     smallint,
    worn            boolean,
    online          boolean NOT NULL,
    firmware        text,
    msg_id          uuid,
    ingested_at     timestamptz NOT NULL DEFAULT now()
$c$, 'device_id, ts', 'ts');

-- Self-reports: Karolinska Sleepiness Scale (1-9) and optional Samn-Perelli (1-7).
SELECT store.make_timeseries('raw.survey_answers', $c$
    device_id       text NOT NULL,
    ts              timestamptz NOT NULL,
    participant_id  uuid NOT NULL,
    kss             smallint NOT NULL CHECK (kss BETWEEN 1 AND 9),
    samn_perelli    smallint CHECK (samn_perelli BETWEEN 1 AND 7),
    context         text NOT NULL DEFAULT 'adhoc',
    msg_id          uuid NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
$c$, 'device_id, ts', 'ts');

-- The message ledger is written in the same transaction as the message's rows.
CREATE TABLE ingest.message_ledger (
    msg_id          uuid PRIMARY KEY,
    payload_sha256  bytea NOT NULL,
    gateway_id      text NOT NULL,
    device_id       text NOT NULL,
    stream          text NOT NULL,
    n_samples       integer NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    redeliveries    integer NOT NULL DEFAULT 0
);

CREATE TABLE ingest.dead_letters (
    dead_letter_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    reason_code     text NOT NULL,
    detail          text NOT NULL,
    msg_id          uuid
);
CREATE INDEX dead_letters_reason_idx ON ingest.dead_letters (reason_code);

-- Messages from unknown or unassigned devices wait here until the device is enrolled.
CREATE TABLE ingest.quarantine (
    quarantine_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    gateway_id      text NOT NULL,
    device_id       text NOT NULL,
    msg_id          uuid NOT NULL UNIQUE,
    payload         bytea NOT NULL,
    replayed_at     timestamptz
);
CREATE INDEX quarantine_device_idx ON ingest.quarantine (device_id) WHERE replayed_at IS NULL;

-- Participant sleep days touched by new data since the feature job last ran.
CREATE TABLE ingest.dirty_days (
    participant_id  uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    sleep_date      date NOT NULL,
    marked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, sleep_date)
);
