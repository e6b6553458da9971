-- The transactional outbox of blob transfers: `publish` writes a new blob's transfer job here
-- in the transaction that creates the blob; a relay hands each job to the transfer queue
-- (RabbitMQ, or transfer_jobs) and deletes it once the queue holds it. A job outlives a broker
-- outage and a server restart.
CREATE TABLE transfer_outbox (
    sha1        CHAR(40)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    to_store    VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    due_at      BIGINT       NOT NULL,
    created_at  BIGINT       NOT NULL,
    PRIMARY KEY (sha1, to_store),
    KEY transfer_outbox_due (due_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
