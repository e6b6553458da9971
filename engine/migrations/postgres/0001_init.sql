-- Users, tokens, the blob (dedup) index and user files. Times are Unix milliseconds.
CREATE TABLE users (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        TEXT   NOT NULL UNIQUE,
    password_hash   TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    last_active_at  BIGINT NOT NULL
);

-- Only SHA-256 hashes of tokens are stored.
CREATE TABLE tokens (
    token_hash  TEXT   PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);

-- A row exists only for content whose SHA1 the server verified itself.
CREATE TABLE blobs (
    sha1        TEXT   PRIMARY KEY,
    size        BIGINT NOT NULL,
    store       TEXT   NOT NULL,
    location    TEXT   NOT NULL,
    refcount    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE user_files (
    id           TEXT   PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    sha1         TEXT   NOT NULL REFERENCES blobs (sha1),
    name         TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    uploaded_at  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (user_id, sha1, name)
);
CREATE INDEX user_files_newest ON user_files (user_id, uploaded_at);

-- Stored blobs no longer referenced, to be deleted from their store (survives a crash).
CREATE TABLE blob_gc (
    store       TEXT   NOT NULL,
    location    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (store, location)
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
