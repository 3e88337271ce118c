-- 061: what each delivered export released about its participants (issue 15, rule cross_export).
--
-- One row per released pseudonym and ledger entry: the project, the key version and the quasi-identifier values
-- as released (pseudonyms and generalised values only: nothing here is not already in the delivered files).
-- The export job writes these rows in the transaction that appends the ledger entry, and reads them back for
-- the next export of the same project, so the checker can refuse an export that, linked by pid with the
-- earlier ones, would leave a combined quasi-identifier class below k. Append-only, like the ledger.
CREATE TABLE exports.released_participants (
    seq          bigint NOT NULL,  -- exports.export_ledger.seq (no FK: the ledger must stay untruncatable by trigger)
    project      text NOT NULL,
    key_version  integer NOT NULL,
    pid          text NOT NULL CHECK (pid ~ '^[A-Z2-7]{26}$'),
    qis          jsonb NOT NULL,
    PRIMARY KEY (seq, pid)
);
CREATE INDEX released_participants_project_idx ON exports.released_participants (project, key_version);

CREATE TRIGGER released_participants_no_update BEFORE UPDATE OR DELETE ON exports.released_participants
    FOR EACH ROW EXECUTE FUNCTION exports.ledger_append_only();
CREATE TRIGGER released_participants_no_truncate BEFORE TRUNCATE ON exports.released_participants
    FOR EACH STATEMENT EXECUTE FUNCTION exports.ledger_append_only();

REVOKE ALL ON exports.released_participants FROM PUBLIC;
GRANT SELECT, INSERT ON exports.released_participants TO fatigue_jobs;
REVOKE UPDATE, DELETE ON exports.released_participants FROM fatigue_jobs;
