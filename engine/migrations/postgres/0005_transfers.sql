-- Blob transfers between stores (hot → cold), when no message broker is configured: jobs wait
-- here until due, are leased by one worker at a time, retried with backoff, and kept as dead
-- after too many failures.
CREATE TABLE transfer_jobs (
    sha1         TEXT     NOT NULL,
    to_store     TEXT     NOT NULL,
    due_at       BIGINT   NOT NULL,
    attempts     INTEGER  NOT NULL DEFAULT 0,
    lease_until  BIGINT   NOT NULL DEFAULT 0,
    dead         INTEGER  NOT NULL DEFAULT 0,
    last_error   TEXT     NOT NULL DEFAULT '',
    PRIMARY KEY (sha1, to_store)
);
CREATE INDEX transfer_jobs_due ON transfer_jobs (dead, due_at);
CREATE INDEX blobs_by_store ON blobs (store, sha1);
