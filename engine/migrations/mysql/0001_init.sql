-- Users, tokens, the blob (dedup) index and user files. Times are Unix milliseconds.
-- utf8mb4_bin: names compare byte for byte, as on the other databases.
CREATE TABLE users (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username        VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    password_hash   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at      BIGINT       NOT NULL,
    last_active_at  BIGINT       NOT NULL,
    UNIQUE KEY users_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Only SHA-256 hashes of tokens are stored.
CREATE TABLE tokens (
    token_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id     BIGINT   NOT NULL,
    created_at  BIGINT   NOT NULL,
    expires_at  BIGINT   NOT NULL,
    KEY tokens_by_expiry (expires_at),
    CONSTRAINT tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A row exists only for content whose SHA1 the server verified itself.
CREATE TABLE blobs (
    sha1        CHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    size        BIGINT       NOT NULL,
    store       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    location    VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    refcount    BIGINT       NOT NULL,
    created_at  BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE user_files (
    id           CHAR(20)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id      BIGINT       NOT NULL,
    sha1         CHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name         VARCHAR(255) NOT NULL,
    size         BIGINT       NOT NULL,
    uploaded_at  BIGINT       NOT NULL,
    updated_at   BIGINT       NOT NULL,
    UNIQUE KEY user_files_unique (user_id, sha1, name),
    KEY user_files_newest (user_id, uploaded_at),
    CONSTRAINT user_files_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT user_files_blob FOREIGN KEY (sha1) REFERENCES blobs (sha1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Stored blobs no longer referenced, to be deleted from their store (survives a crash).
CREATE TABLE blob_gc (
    store       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    location    VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at  BIGINT       NOT NULL,
    PRIMARY KEY (store, location)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE settings (
    name   VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    value  VARCHAR(512) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
