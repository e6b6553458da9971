-- Resumable upload sessions (the SQL session store; Redis replaces these on many nodes).
CREATE TABLE upload_sessions (
    id            CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner         BIGINT       NOT NULL,
    file_name     VARCHAR(255) NOT NULL,
    size          BIGINT       NOT NULL,
    sha1          CHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    chunk_size    BIGINT       NOT NULL,
    chunk_count   BIGINT       NOT NULL,
    created_at    BIGINT       NOT NULL,
    expires_at    BIGINT       NOT NULL,
    hashed_parts  BIGINT       NOT NULL,
    hash_epoch    BIGINT       NOT NULL,
    hash_state    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    claim_holder  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    claim_until   BIGINT       NOT NULL DEFAULT 0,
    UNIQUE KEY upload_sessions_one_open (owner, sha1, size),
    KEY upload_sessions_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE upload_parts (
    upload_id  CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    part       BIGINT       NOT NULL,
    etag       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    PRIMARY KEY (upload_id, part)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- What completed sessions produced, kept a while for repeated completes.
CREATE TABLE upload_results (
    id       CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner    BIGINT   NOT NULL,
    file_id  CHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    keep_until BIGINT   NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
