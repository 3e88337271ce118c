-- 003: dead letters record the payload digest and whether the broker flagged the message as a redelivery,
-- so a bad message redelivered after a crash between COMMIT and PUBACK can be recognised in the table.
ALTER TABLE ingest.dead_letters
    ADD COLUMN payload_sha256 bytea,
    ADD COLUMN redelivered boolean NOT NULL DEFAULT false;
CREATE INDEX dead_letters_msg_idx ON ingest.dead_letters (msg_id) WHERE msg_id IS NOT NULL;
