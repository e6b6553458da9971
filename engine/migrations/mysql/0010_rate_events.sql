-- Events counted for rate limits, per kind and key: failed sign-ins per (client address,
-- username) and per client address, sign-ups per client address. A row per event; rows older
-- than a day are dropped. Replaces signin_failures (which counted per username and so let an
-- attacker lock an account out).
CREATE TABLE rate_events (
    kind  VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    rkey  VARCHAR(200)  NOT NULL,
    at    BIGINT        NOT NULL,
    KEY rate_events_by_key (kind, rkey, at),
    KEY rate_events_by_age (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
DROP TABLE signin_failures;
