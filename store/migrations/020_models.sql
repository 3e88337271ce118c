-- 020: outputs of the fatigue models, written by `fatigue models run` / the scheduler.
CREATE SCHEMA IF NOT EXISTS derived;

-- Three-process-model exposure per rostered duty (science.md 4.1 and 5; shared columns in docs/developing.md).
CREATE TABLE derived.duty_exposure (
    participant_id      uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    start_ts            timestamptz NOT NULL,
    end_ts              timestamptz NOT NULL,
    minutes_kss_ge7     real,
    minutes_kss_ge8     real,
    peak_kss            real,
    minutes_to_kss7     real,
    estimated           boolean NOT NULL DEFAULT false,
    model_version       text NOT NULL,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, start_ts)
);

-- Sleepiness-model scores per participant and day, with the model version that produced them.
CREATE TABLE derived.sleepiness_scores (
    participant_id      uuid NOT NULL REFERENCES core.participants ON DELETE CASCADE,
    sleep_date          date NOT NULL,
    p_high_sleepiness   real NOT NULL CHECK (p_high_sleepiness BETWEEN 0 AND 1),
    tpm_kss_mean        real,
    model_version       text NOT NULL,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, sleep_date, model_version)
);
