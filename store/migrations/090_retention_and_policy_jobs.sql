-- 090: one retention policy for both storage modes, a ledger of maintenance runs, and compression-safe schema
-- changes of the raw streams.
--
-- Retention. store.raw_retention is the one source of how long raw streams are kept. With TimescaleDB it
-- becomes each hypertable's retention policy (store.apply_raw_retention() replaces the policies that migration
-- 002 created with the same 485 days); with native partitions store.drop_expired_partitions() drops every
-- monthly partition that lies wholly before now() - keep_for, as TimescaleDB's drop_chunks does with chunks.
-- `fatigue db maintain` and the scheduler's weekly maintenance call it.
--
-- Maintenance ledger. store.maintenance_runs records each policy job that `fatigue db maintain` ran itself
-- (CALL run_job on TimescaleDB) and each plain-mode retention run, so that job health does not depend on
-- TimescaleDB's background workers alone (they can fail, e.g. on PostgreSQL 15.20).
CREATE TABLE store.raw_retention (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    keep_for   interval NOT NULL CHECK (keep_for >= interval '121 days')
);
-- The study keeps raw data for the 120-day programme plus a year for re-analysis (science.md, design.md 4).
INSERT INTO store.raw_retention (keep_for) VALUES (interval '485 days');

CREATE TABLE store.maintenance_runs (
    run_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL,                -- 'policy_compression', 'policy_retention', 'drop_expired_partitions'
    job_id       integer,                      -- TimescaleDB job id; NULL for plain-mode retention
    target       text,                         -- the hypertable, or NULL for every raw stream
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    succeeded    boolean NOT NULL,
    detail       text NOT NULL DEFAULT ''      -- what was done, or the error; never personal data
);
CREATE INDEX maintenance_runs_job_idx ON store.maintenance_runs (job, job_id, finished_at DESC);

-- TimescaleDB mode: make store.raw_retention the hypertables' retention policy. Plain mode: nothing to do
-- here (store.drop_expired_partitions applies the same number).
CREATE FUNCTION store.apply_raw_retention() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    keep interval;
    t text;
    n integer := 0;
BEGIN
    IF (SELECT mode FROM store.storage_mode) <> 'timescaledb' THEN
        RETURN 0;
    END IF;
    SELECT keep_for INTO STRICT keep FROM store.raw_retention;
    FOR t IN SELECT table_name FROM store.timeseries_tables ORDER BY 1 LOOP
        PERFORM remove_retention_policy(t::regclass, if_exists => true);
        PERFORM add_retention_policy(t::regclass, drop_after => keep);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

SELECT store.apply_raw_retention();

-- Plain mode: drop the monthly partitions of every raw stream whose upper bound is at or before
-- p_now - keep_for, and delete the rows of the DEFAULT partition that such months would have held.
-- Returns one row per dropped partition (rows_deleted NULL: a partition is dropped whole, not counted) and
-- one per DEFAULT partition that lost rows. Returns nothing in TimescaleDB mode (the policies do it there).
CREATE FUNCTION store.drop_expired_partitions(p_now timestamptz DEFAULT now())
RETURNS TABLE (parent text, dropped text, rows_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz;
    t record;
    p record;
    upper_bound text;
    n bigint;
BEGIN
    IF (SELECT mode FROM store.storage_mode) <> 'partitioned' THEN
        RETURN;
    END IF;
    SELECT p_now - keep_for INTO STRICT cutoff FROM store.raw_retention;
    FOR t IN SELECT s.table_name, s.time_column FROM store.timeseries_tables s ORDER BY 1 LOOP
        FOR p IN SELECT c.oid::regclass::text AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = t.table_name::regclass ORDER BY 1 LOOP
            IF p.bound = 'DEFAULT' THEN
                EXECUTE format('DELETE FROM %s WHERE %I < %L', p.part, t.time_column,
                               date_trunc('month', cutoff));
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n > 0 THEN
                    parent := t.table_name; dropped := NULL; rows_deleted := n;
                    RETURN NEXT;
                END IF;
                CONTINUE;
            END IF;
            upper_bound := substring(p.bound FROM $re$ TO \('([^']*)'\)$re$);
            IF upper_bound IS NOT NULL AND upper_bound::timestamptz <= cutoff THEN
                EXECUTE format('DROP TABLE %s', p.part);
                parent := t.table_name; dropped := p.part; rows_deleted := NULL;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- ALTER TABLE on a raw stream that also works when the hypertable has compressed chunks. TimescaleDB before
-- 2.20 refuses to add constraints to a hypertable with compressed chunks; the change is then applied after
-- decompressing them (the compression policy compresses them again later). Use it for every schema change of
-- raw.* in tests and migrations, e.g. SELECT store.alter_timeseries('raw.hr_runs', 'ADD CONSTRAINT ...').
CREATE FUNCTION store.alter_timeseries(p_table regclass, p_action text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM store.timeseries_tables WHERE table_name::regclass = p_table) THEN
        RAISE EXCEPTION '% is not a raw time-series table (see store.timeseries_tables)', p_table;
    END IF;
    BEGIN
        EXECUTE format('ALTER TABLE %s %s', p_table, p_action);
        RETURN;
    EXCEPTION WHEN feature_not_supported THEN
        IF (SELECT mode FROM store.storage_mode) <> 'timescaledb' THEN
            RAISE;
        END IF;
    END;
    EXECUTE 'SELECT count(decompress_chunk(c, if_compressed => true)) FROM show_chunks($1) c' INTO n USING p_table;
    RAISE NOTICE 'decompressed % chunk(s) of % for this change; the compression policy compresses them again',
        n, p_table;
    BEGIN
        EXECUTE format('ALTER TABLE %s %s', p_table, p_action);
    EXCEPTION WHEN feature_not_supported THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = SQLERRM,
            HINT = 'TimescaleDB refuses this change while compression is enabled, even with no compressed '
                   'chunk. For a constraint, upgrade TimescaleDB (2.20+; docker-compose.yml pins one). For a '
                   'column type change, switch compression off around it: remove_compression_policy, ALTER '
                   'TABLE ... SET (timescaledb.compress = false), the change, then compression and its policy '
                   'as migration 002 sets them';
    END;
END $$;

REVOKE ALL ON FUNCTION store.apply_raw_retention(), store.drop_expired_partitions(timestamptz),
    store.alter_timeseries(regclass, text) FROM PUBLIC;
