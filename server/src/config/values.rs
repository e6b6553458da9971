//! The values flags take: sizes, durations, rates, address ranges, URLs.

use std::time::Duration;

/// Hides the password of a URL (`scheme://user:***@host/…`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable>".into(),
    }
}

/// Sizes like `1048576`, `512KiB`, `5MiB`, `64GiB`, `1TiB` (also KB/MB/GB as powers of 1000).
pub use chunkvault_api::parse_size;

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// A duration that may be zero (`0s`).
pub(super) fn parse_delay(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

pub(super) fn parse_database_url(s: &str) -> Result<String, String> {
    chunkvault_engine::meta::Dialect::from_url(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

pub(super) fn parse_redis_url(s: &str) -> Result<String, String> {
    if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("redis+unix://") {
        Ok(s.to_owned())
    } else {
        Err("must start with redis:// or rediss://".into())
    }
}

pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && !s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if ok {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err("must be an http:// or https:// URL without query".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("64GiB").unwrap(), 64 << 30);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2 kb").unwrap(), 2000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("99999999999999TiB").is_err());
    }
}

/// A rate limit: at most `n` per period, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub Option<(u64, Duration)>);

/// `10/hour`, `10/h`, `5/min`, `3/1m`, `100/day`, `off`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s == "off" {
        return Ok(Rate(None));
    }
    let (n, per) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected COUNT/PERIOD, like 10/hour, or off"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: the count must be a whole number"))?;
    let per = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => parse_duration(other)?,
    };
    if n == 0 || per.is_zero() {
        return Err(format!("{s:?}: use off to turn the limit off"));
    }
    Ok(Rate(Some((n, per))))
}

/// An address range: `10.0.0.0/8`, `::1`, `127.0.0.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok(Cidr { addr, bits })
}
