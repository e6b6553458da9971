-- One table for every upload session, whatever protocol opened it: `layout` says whether its
-- bytes arrive as numbered parts ('parts': REST, /file/mpupload) or as an append stream
-- ('stream': tus). Parts sessions carry sha1, chunk plan and hash progress; streams carry their
-- offset, the file they became and the protocol's metadata. `size` is the file's size, or a
-- stream's length (NULL while deferred). Streams have no sha1, so they never collide in the
-- (owner, sha1, size) key that makes an init resume the open session of the same file.
CREATE TABLE uploads (
    id            CHAR(32)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner         BIGINT        NOT NULL,
    file_name     VARCHAR(255)  NOT NULL,
    created_at    BIGINT        NOT NULL,
    expires_at    BIGINT        NOT NULL,
    claim_holder  VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    claim_until   BIGINT        NOT NULL DEFAULT 0,
    layout        VARCHAR(8)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    size          BIGINT        NULL,
    sha1          CHAR(40)      CHARACTER SET ascii COLLATE ascii_bin NULL,
    chunk_size    BIGINT        NOT NULL DEFAULT 0,
    chunk_count   BIGINT        NOT NULL DEFAULT 0,
    hashed_parts  BIGINT        NOT NULL DEFAULT 0,
    hash_epoch    BIGINT        NOT NULL DEFAULT 0,
    hash_state    VARCHAR(255)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    upload_offset BIGINT        NOT NULL DEFAULT 0,
    file_id       CHAR(20)      CHARACTER SET ascii COLLATE ascii_bin NULL,
    metadata      TEXT          NOT NULL,
    concat        VARCHAR(4096) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    UNIQUE KEY uploads_one_open (owner, sha1, size),
    KEY uploads_expiry (expires_at),
    KEY uploads_open (owner, file_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO uploads (id, owner, file_name, created_at, expires_at, claim_holder, claim_until,
                     layout, size, sha1, chunk_size, chunk_count, hashed_parts, hash_epoch,
                     hash_state, metadata)
SELECT id, owner, file_name, created_at, expires_at, claim_holder, claim_until,
       'parts', size, sha1, chunk_size, chunk_count, hashed_parts, hash_epoch, hash_state, ''
FROM upload_sessions;

INSERT INTO uploads (id, owner, file_name, created_at, expires_at, claim_holder, claim_until,
                     layout, size, hash_state, upload_offset, file_id, metadata, concat)
SELECT id, owner, file_name, created_at, expires_at, lock_holder, lock_until,
       'stream', length, hash_state, upload_offset, file_id, metadata, concat
FROM tus_uploads;

DROP TABLE upload_sessions;
DROP TABLE tus_uploads;
