-- 040: the research export ledger (reliability_security.md 1.9 "Audit", test P2).
--
-- exports.export_ledger is append-only and hash-chained. Every delivered export has one row holding what was
-- released (project, policy and key version -- never the key --, row counts, k achieved, suppression counts and
-- the SHA-256 of every delivered file). entry_hash = SHA-256 of prev_hash, a newline and the canonical JSON of
-- the row's content (exports.ledger.entry_hash computes it; `fatigue export verify` recomputes the chain).
-- Triggers refuse UPDATE, DELETE and TRUNCATE, and refuse an INSERT whose seq / prev_hash do not extend the
-- chain (writers lock the table in SHARE ROW EXCLUSIVE mode, read the head, then insert).
CREATE SCHEMA IF NOT EXISTS exports;

CREATE TABLE exports.export_ledger (
    seq             bigint PRIMARY KEY CHECK (seq >= 1),
    requested_at    timestamptz NOT NULL,
    requester       text NOT NULL CHECK (length(requester) BETWEEN 1 AND 200),
    approver        text,
    project         text NOT NULL CHECK (length(project) BETWEEN 1 AND 200),
    policy_version  text NOT NULL,
    key_version     integer NOT NULL CHECK (key_version >= 1),
    row_counts      jsonb NOT NULL,
    k_achieved      integer NOT NULL,
    suppression     jsonb NOT NULL,
    file_hashes     jsonb NOT NULL,
    prev_hash       text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    entry_hash      text NOT NULL UNIQUE CHECK (entry_hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX export_ledger_project_idx ON exports.export_ledger (project, seq);

CREATE FUNCTION exports.ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exports.export_ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER export_ledger_no_update BEFORE UPDATE OR DELETE ON exports.export_ledger
    FOR EACH ROW EXECUTE FUNCTION exports.ledger_append_only();
CREATE TRIGGER export_ledger_no_truncate BEFORE TRUNCATE ON exports.export_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION exports.ledger_append_only();

-- An INSERT must extend the chain: next seq, and prev_hash equal to the current head's entry_hash
-- (64 zeros for the first entry).
CREATE FUNCTION exports.ledger_extends_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT seq, entry_hash INTO head_seq, head_hash FROM exports.export_ledger ORDER BY seq DESC LIMIT 1;
    IF NEW.seq <> coalesce(head_seq, 0) + 1
       OR NEW.prev_hash <> coalesce(head_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION 'export ledger entry % does not extend the chain (head is %)', NEW.seq, head_seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER export_ledger_chain BEFORE INSERT ON exports.export_ledger
    FOR EACH ROW EXECUTE FUNCTION exports.ledger_extends_chain();
