//! How to reach one bucket.

/// How to reach one bucket. Credentials never appear in `Debug` output or logs.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host[:port]` of the S3 endpoint (RGW, OSS region endpoint, MinIO…).
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`), so stores can share a bucket.
    pub prefix: String,
    /// `bucket.host` addressing (Aliyun OSS, AWS) instead of `host/bucket` (Ceph, MinIO).
    pub virtual_hosted: bool,
    pub access_key: String,
    pub secret_key: String,
    /// Smallest part other than the last the service accepts: 5 MiB for S3 and Ceph, 100 KB
    /// for OSS.
    pub min_part_size: u64,
    /// Size of the parts this store cuts streamed bodies into (tus appends, single uploads).
    pub buffer_part_size: u64,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("virtual_hosted", &self.virtual_hosted)
            .field("access_key", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .field("min_part_size", &self.min_part_size)
            .finish()
    }
}

/// 5 MiB: the smallest non-final multipart part on S3 and Ceph RGW.
pub const S3_MIN_PART: u64 = 5 * 1024 * 1024;
/// 100 KB: the smallest non-final multipart part on Aliyun OSS.
pub const OSS_MIN_PART: u64 = 100 * 1024;
