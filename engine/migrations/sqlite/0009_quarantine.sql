-- A blob found not to hash to its SHA1 (a collision check, a download's verification, fsck) is
-- quarantined: its bytes are moved aside for inspection and it no longer takes part in dedup;
-- the next genuine upload of that SHA1 gives the row fresh bytes and clears the flag.
ALTER TABLE blobs ADD COLUMN quarantined BIGINT NOT NULL DEFAULT 0;
