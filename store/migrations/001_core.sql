-- 001: reference data: forces, gateways, participants, identities, devices, assignments, duties.
-- Participants carry no identity; the staff reference lives in core.identities.
CREATE SCHEMA IF NOT EXISTS core;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE core.forces (
    force_id    text PRIMARY KEY CHECK (force_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE core.gateways (
    gateway_id  text PRIMARY KEY CHECK (gateway_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    force_id    text REFERENCES core.forces,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE core.participants (
    participant_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    force_id         text NOT NULL REFERENCES core.forces,
    role_group       text NOT NULL CHECK (role_group IN
                         ('response', 'firearms', 'investigation', 'contact_management', 'other')),
    age_band         text NOT NULL CHECK (age_band ~ '^([0-9]{2}-[0-9]{2}|[0-9]{2}\+)$'),
    sex              text NOT NULL CHECK (sex IN ('female', 'male', 'other', 'not_stated')),
    programme_start  date NOT NULL,
    consent_manager  boolean NOT NULL DEFAULT false,
    consent_research boolean NOT NULL DEFAULT false,
    withdrawn_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX participants_force_idx ON core.participants (force_id);

-- Identity is kept apart so that only the admin path (and a consenting manager's path) can read it.
CREATE TABLE core.identities (
    participant_id  uuid PRIMARY KEY REFERENCES core.participants ON DELETE CASCADE,
    force_id        text NOT NULL REFERENCES core.forces,
    staff_ref       text NOT NULL CHECK (length(staff_ref) BETWEEN 1 AND 64),
    UNIQUE (force_id, staff_ref)
);

CREATE TABLE core.devices (
    device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A device belongs to one participant over a half-open interval [valid_from, valid_to); devices get swapped.
CREATE TABLE core.device_assignments (
    device_id       text NOT NULL REFERENCES core.devices,
    participant_id  uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    PRIMARY KEY (device_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    EXCLUDE USING gist (device_id WITH =,
                        tstzrange(valid_from, coalesce(valid_to, 'infinity')) WITH &&)
);
CREATE INDEX device_assignments_participant_idx ON core.device_assignments (participant_id);

-- The duty roster: one row per rostered duty, half-open [start_ts, end_ts).
CREATE TABLE core.duties (
    participant_id  uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz NOT NULL,
    shift_type      text NOT NULL CHECK (shift_type IN
                        ('early', 'late', 'night', 'day', 'long_day', 'office', 'training', 'other')),
    overtime        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (participant_id, start_ts),
    CHECK (end_ts > start_ts AND end_ts - start_ts <= interval '24 hours')
);

-- Erasure leaves an audit record with no personal data: the force, when, by whom (a role, not a person's
-- name) and how many rows were deleted from each table. Nothing links it back to the participant.
CREATE TABLE core.erasure_log (
    erasure_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    force_id        text NOT NULL,
    erased_at       timestamptz NOT NULL DEFAULT now(),
    requested_by    text NOT NULL,
    rows_deleted    jsonb NOT NULL
);
