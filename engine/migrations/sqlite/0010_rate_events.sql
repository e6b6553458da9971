-- Events counted for rate limits, per kind and key: failed sign-ins per (client address,
-- username) and per client address, sign-ups per client address. A row per event; rows older
-- than a day are dropped. Replaces signin_failures (which counted per username and so let an
-- attacker lock an account out).
CREATE TABLE rate_events (
    kind  TEXT    NOT NULL,
    rkey  TEXT    NOT NULL,
    at    BIGINT  NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events (kind, rkey, at);
CREATE INDEX rate_events_by_age ON rate_events (at);
DROP TABLE signin_failures;
