-- Failed sign-ins per username, for rate limiting (a row per failure; old rows are dropped).
CREATE TABLE signin_failures (
    username  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    at        BIGINT       NOT NULL,
    KEY signin_failures_by_name (username, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX user_files_by_user ON user_files (user_id, size);
