-- Failed sign-ins per username, for rate limiting (a row per failure; old rows are dropped).
CREATE TABLE signin_failures (
    username  TEXT    NOT NULL,
    at        BIGINT  NOT NULL
);
CREATE INDEX signin_failures_by_name ON signin_failures (username, at);
CREATE INDEX user_files_by_user ON user_files (user_id, size);
