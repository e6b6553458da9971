-- Proof of ownership for instant upload: a challenge names byte ranges of stored content whose
-- SHA-256 digests the client must return; single use, short-lived.
CREATE TABLE proof_challenges (
    id          TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL,
    sha1        TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    file_name   TEXT    NOT NULL,
    chunk_size  BIGINT  NOT NULL,
    ranges      TEXT    NOT NULL,
    expected    TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);
-- Wrong answers, for rate limiting.
CREATE TABLE proof_failures (
    user_id  BIGINT  NOT NULL,
    at       BIGINT  NOT NULL
);
CREATE INDEX proof_failures_by_user ON proof_failures (user_id, at);
