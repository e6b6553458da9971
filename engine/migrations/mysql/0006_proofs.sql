-- Proof of ownership for instant upload: a challenge names byte ranges of stored content whose
-- SHA-256 digests the client must return; single use, short-lived.
CREATE TABLE proof_challenges (
    id          CHAR(32)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id     BIGINT        NOT NULL,
    sha1        CHAR(40)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    size        BIGINT        NOT NULL,
    file_name   VARCHAR(255)  NOT NULL,
    chunk_size  BIGINT        NOT NULL,
    ranges      VARCHAR(512)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expected    VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expires_at  BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- Wrong answers, for rate limiting.
CREATE TABLE proof_failures (
    user_id  BIGINT  NOT NULL,
    at       BIGINT  NOT NULL,
    KEY proof_failures_by_user (user_id, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
