-- Blob transfers between stores (hot → cold), when no message broker is configured: jobs wait
-- here until due, are leased by one worker at a time, retried with backoff, and kept as dead
-- after too many failures.
CREATE TABLE transfer_jobs (
    sha1         CHAR(40)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    to_store     VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    due_at       BIGINT        NOT NULL,
    attempts     INTEGER       NOT NULL DEFAULT 0,
    lease_until  BIGINT        NOT NULL DEFAULT 0,
    dead         INTEGER       NOT NULL DEFAULT 0,
    last_error   VARCHAR(1024) NOT NULL DEFAULT '',
    PRIMARY KEY (sha1, to_store),
    KEY transfer_jobs_due (dead, due_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX blobs_by_store ON blobs (store, sha1);
