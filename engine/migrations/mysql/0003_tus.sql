-- tus uploads (the SQL session store; Redis replaces this on many nodes).
CREATE TABLE tus_uploads (
    id             CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner          BIGINT       NOT NULL,
    file_name      VARCHAR(255) NOT NULL,
    metadata       TEXT         NOT NULL,
    length         BIGINT       NULL,
    upload_offset  BIGINT       NOT NULL,
    hash_state     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at     BIGINT       NOT NULL,
    expires_at     BIGINT       NOT NULL,
    file_id        CHAR(20)     CHARACTER SET ascii COLLATE ascii_bin NULL,
    lock_holder    VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    lock_until     BIGINT       NOT NULL DEFAULT 0,
    KEY tus_uploads_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
