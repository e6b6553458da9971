-- tus uploads (the SQL session store; Redis replaces this on many nodes).
CREATE TABLE tus_uploads (
    id             TEXT    PRIMARY KEY,
    owner          BIGINT  NOT NULL,
    file_name      TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    length         BIGINT,
    upload_offset  BIGINT  NOT NULL,
    hash_state     TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    file_id        TEXT,
    lock_holder    TEXT    NOT NULL DEFAULT '',
    lock_until     BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX tus_uploads_expiry ON tus_uploads (expires_at);
