-- The transactional outbox of blob transfers: `publish` writes a new blob's transfer job here
-- in the transaction that creates the blob; a relay hands each job to the transfer queue
-- (RabbitMQ, or transfer_jobs) and deletes it once the queue holds it. A job outlives a broker
-- outage and a server restart.
CREATE TABLE transfer_outbox (
    sha1        TEXT    NOT NULL,
    to_store    TEXT    NOT NULL,
    due_at      BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (sha1, to_store)
);
CREATE INDEX transfer_outbox_due ON transfer_outbox (due_at);
