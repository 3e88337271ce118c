-- 121: participant ranges claimed by job runs on several machines (issue 22, features.job_claims).
--
-- A run labelled L splits the participant UUID space into n_ranges equal ranges. A worker owns range r while it
-- holds the session advisory lock (hashtext(job || ':' || L), r) and records it here; done_at marks a range
-- finished for that label, so other machines of the same run skip it. A worker that dies releases its lock with
-- its session, and the range is taken over by the next worker that tries it.
CREATE TABLE derived.job_ranges (
    job         text NOT NULL,
    run_label   text NOT NULL,
    range_no    integer NOT NULL,
    n_ranges    integer NOT NULL CHECK (n_ranges > 0 AND range_no >= 0 AND range_no < n_ranges),
    claimed_by  text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    participants integer,
    PRIMARY KEY (job, run_label, range_no)
);
