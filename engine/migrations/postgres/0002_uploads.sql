-- Resumable upload sessions (the SQL session store; Redis replaces these on many nodes).
CREATE TABLE upload_sessions (
    id            TEXT PRIMARY KEY,
    owner         BIGINT  NOT NULL,
    file_name     TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    sha1          TEXT    NOT NULL,
    chunk_size    BIGINT  NOT NULL,
    chunk_count   BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    hashed_parts  BIGINT  NOT NULL,
    hash_epoch    BIGINT  NOT NULL,
    hash_state    TEXT    NOT NULL,
    claim_holder  TEXT    NOT NULL DEFAULT '',
    claim_until   BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (owner, sha1, size)
);
CREATE INDEX upload_sessions_expiry ON upload_sessions (expires_at);

CREATE TABLE upload_parts (
    upload_id  TEXT    NOT NULL,
    part       BIGINT  NOT NULL,
    etag       TEXT    NOT NULL,
    PRIMARY KEY (upload_id, part)
);

-- What completed sessions produced, kept a while for repeated completes.
CREATE TABLE upload_results (
    id       TEXT PRIMARY KEY,
    owner    BIGINT  NOT NULL,
    file_id  TEXT    NOT NULL,
    keep_until BIGINT  NOT NULL
);
