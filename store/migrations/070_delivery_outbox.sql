-- 070: delivery outbox of the weekly reports, and fulfilment of researchers' approved export requests.
--
-- risk.report_jobs: one row per force and ISO week that is due a weekly report. Its report_id is fixed when the
-- row is made, so every retry (and every scheduler) builds, names and records the same report.
-- risk.report_deliveries: one row per report and channel (outbox file, MQTT notice, e-mail). A channel is
-- 'pending' until it succeeds ('delivered') or an operator cancels it ('cancelled', `fatigue deliveries cancel`).
-- Schedulers claim a pending row with SELECT ... FOR UPDATE SKIP LOCKED and keep the lock while delivering, so
-- two schedulers never deliver the same row at once, and a delivered row is never delivered again.
-- Neither table holds personal data (force ids, ISO weeks, counts, error class names).
CREATE TABLE risk.report_jobs (
    force_id    text NOT NULL REFERENCES core.forces,
    iso_week    text NOT NULL CHECK (iso_week ~ '^[0-9]{4}-W[0-9]{2}$'),
    report_id   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (force_id, iso_week)
);

CREATE TABLE risk.report_deliveries (
    report_id        uuid NOT NULL REFERENCES risk.report_jobs (report_id) ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('outbox', 'mqtt', 'email')),
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text CHECK (length(last_error) <= 300),
    detail           text CHECK (length(detail) <= 300),
    delivered_at     timestamptz,
    cancelled_by     text CHECK (length(cancelled_by) <= 200),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, channel),
    CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX report_deliveries_due_idx ON risk.report_deliveries (next_attempt_at) WHERE state = 'pending';

-- Export requests: an administrator approves a request (`fatigue export-requests approve`); the scheduler then
-- fulfils it and records the ledger entry it delivered. A researcher can never insert an approved request.
ALTER TABLE access.export_requests
    ADD COLUMN approved_by      text CHECK (length(approved_by) BETWEEN 1 AND 200),
    ADD COLUMN approved_at      timestamptz,
    ADD COLUMN export_seq       bigint,  -- exports.export_ledger.seq (no FK: the ledger must stay TRUNCATE-proof by its trigger alone)
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at  timestamptz;

CREATE POLICY export_requests_not_self_approved ON access.export_requests AS RESTRICTIVE FOR INSERT
    TO fatigue_researcher
    WITH CHECK (approved_by IS NULL AND approved_at IS NULL AND export_seq IS NULL);
CREATE INDEX export_requests_approved_idx ON access.export_requests (next_attempt_at)
    WHERE approved_at IS NOT NULL AND status IN ('requested', 'running');
