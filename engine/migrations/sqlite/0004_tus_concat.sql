-- tus concatenation: '' for a plain upload, 'partial', or the final upload's whole Upload-Concat.
ALTER TABLE tus_uploads ADD COLUMN concat TEXT NOT NULL DEFAULT '';
