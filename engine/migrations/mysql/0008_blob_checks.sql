-- Collision-attack verdicts per SHA1 (sha1-checked over the stored bytes), computed the first
-- time content is about to be shared. A SHA1 whose content carries an attack is never shared.
CREATE TABLE blob_checks (
    sha1        CHAR(40)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    collision   BIGINT    NOT NULL,
    checked_at  BIGINT    NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
