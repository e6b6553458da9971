-- tus concatenation: '' for a plain upload, 'partial', or the final upload's whole Upload-Concat.
ALTER TABLE tus_uploads ADD COLUMN concat VARCHAR(4096) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
