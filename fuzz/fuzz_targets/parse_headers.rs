//! The server's parsers of request headers and parameters never panic, and what they accept
//! means what it says: every accepted value re-encodes to one that parses to the same thing.
//! Covers `Range`, `If-None-Match`, `Content-MD5`, `chkhash`, query strings and forms, tus
//! `Upload-Length`/`Upload-Offset`, `Upload-Checksum`, `Upload-Concat`, `Upload-Metadata`, the
//! IETF resumable-upload Structured Fields (`Upload-Offset`, `Upload-Complete`) and
//! `Content-Digest`, and the `Content-Disposition` made from a file name.
#![no_main]

use base64::Engine as _;
use chunkvault_engine::uploads::tus::TusConcat;
use chunkvault_engine::{Checksum, FileName, RangeRequest, UploadId};
use chunkvault_server::routes::classic::mpupload::chkhash;
use chunkvault_server::routes::download::{content_disposition, none_match, parse_range};
use chunkvault_server::routes::ietf;
use chunkvault_server::routes::tus::{
    metadata_file_name, parse_checksum, parse_concat, uint_header,
};
use chunkvault_server::routes::uploads::{content_md5, part_number};
use chunkvault_server::routes::Params;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use warp::http::{HeaderMap, HeaderValue};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn range(s: &str) {
    let Some(r) = parse_range(s) else { return };
    let again = match r {
        RangeRequest::From { start, last: None } => format!("bytes={start}-"),
        RangeRequest::From {
            start,
            last: Some(l),
        } => format!("bytes={start}-{l}"),
        RangeRequest::Suffix(n) => format!("bytes=-{n}"),
    };
    assert_eq!(parse_range(&again), Some(r), "{again}");
    let start = match r {
        RangeRequest::From { start, .. } => start,
        RangeRequest::Suffix(n) => n,
    };
    for size in [0, 1, start, start.saturating_add(1), u64::MAX] {
        if let Ok(b) = r.resolve(size) {
            assert!(b.start < b.end && b.end <= size, "{r:?} of {size}: {b:?}");
        }
    }
}

fn md5_header(s: &str) {
    if let Ok(Some(Checksum::Md5(d))) = content_md5(Some(s.to_owned())) {
        assert_eq!(B64.decode(s.trim()).unwrap(), d);
        let again = content_md5(Some(B64.encode(d))).unwrap();
        assert_eq!(again, Some(Checksum::Md5(d)));
    } else if let Ok(other) = content_md5(Some(s.to_owned())) {
        panic!("Content-MD5 {s:?} gave {other:?}");
    }
}

fn params(s: &str) {
    let p = Params::from_query(s);
    if let Ok(Some(Checksum::Sha1(d))) = chkhash(&p) {
        assert_eq!(
            hex::encode(d),
            p.get("chkhash").unwrap().to_ascii_lowercase()
        );
    }
    if let Ok(Some(n)) = p.uint("size") {
        assert_eq!(p.get("size").unwrap().parse::<u64>().unwrap(), n);
    }
    if let Ok(v) = p.require("filename") {
        assert!(!v.is_empty());
    }
    // Any key and value survive encoding; the first of repeated keys wins.
    let (k, v) = s.split_once('\u{1}').unwrap_or((s, ""));
    if !k.is_empty() {
        let ek = utf8_percent_encode(k, NON_ALPHANUMERIC).to_string();
        let ev = utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let p = Params::from_query(&format!("{ek}={ev}&{ek}=second&x=1"));
        assert_eq!(p.get(k), Some(v), "{k:?}={v:?}");
    }
}

fn uint(raw: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("upload-length", value);
    if let Ok(Some(n)) = uint_header(&headers, "upload-length") {
        let text = std::str::from_utf8(raw).unwrap().trim();
        assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
        assert_eq!(text.parse::<u64>().unwrap(), n);
    }
    assert!(matches!(
        uint_header(&HeaderMap::new(), "upload-offset"),
        Ok(None)
    ));
}

fn ietf_fields(raw: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for name in [
        "upload-offset",
        "upload-complete",
        "content-digest",
        "repr-digest",
    ] {
        headers.insert(name, value.clone());
    }
    let item = || {
        std::str::from_utf8(raw)
            .unwrap()
            .trim_matches([' ', '\t'])
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    if let Ok(Some(n)) = ietf::size(&headers, "upload-offset") {
        assert_eq!(item().parse::<i64>().unwrap(), n as i64, "{:?}", item());
        let mut again = HeaderMap::new();
        again.insert("upload-offset", HeaderValue::from(n));
        assert_eq!(ietf::size(&again, "upload-offset").unwrap(), Some(n));
    }
    if let Ok(Some(b)) = ietf::boolean(&headers, "upload-complete") {
        assert_eq!(item(), if b { "?1" } else { "?0" });
    }
    if let Ok(Some(c)) = ietf::content_digest(&headers) {
        let again = match c {
            Checksum::Sha256(d) => format!("sha-256=:{}:", B64.encode(d)),
            Checksum::Sha1(d) => format!("sha=:{}:", B64.encode(d)),
            Checksum::Md5(d) => format!("md5=:{}:", B64.encode(d)),
            Checksum::Crc32c(_) => panic!("Content-Digest offers sha-256, sha and md5 only"),
        };
        let mut h = HeaderMap::new();
        h.insert("content-digest", HeaderValue::from_str(&again).unwrap());
        assert_eq!(ietf::content_digest(&h).unwrap(), Some(c));
    }
    // The same members, one order of preference apart: both fields accept or refuse alike.
    let repr = ietf::repr_digest(&headers);
    assert_eq!(
        repr.is_ok(),
        ietf::content_digest(&headers).is_ok(),
        "{repr:?}"
    );
    if let Ok(Some(c)) = repr {
        // Stored and read back by the session stores.
        assert_eq!(Checksum::decode(&c.encode()), Some(c));
    }
}

fn checksum(s: &str) {
    let Ok(c) = parse_checksum(s) else { return };
    let again = match c {
        Checksum::Sha1(d) => format!("sha1 {}", B64.encode(d)),
        Checksum::Md5(d) => format!("md5 {}", B64.encode(d)),
        Checksum::Sha256(d) => format!("sha256 {}", B64.encode(d)),
        Checksum::Crc32c(_) => panic!("tus offers sha1, md5 and sha256 only"),
    };
    assert_eq!(parse_checksum(&again).unwrap(), c);
}

fn concat(s: &str) {
    match parse_concat(s) {
        Ok(TusConcat::Partial) => assert_eq!(s, "partial"),
        Ok(TusConcat::Final { parts, header }) => {
            assert_eq!(header, s);
            for p in &parts {
                assert_eq!(UploadId::parse(p.as_str()).unwrap(), *p);
            }
            let again = format!(
                "final;{}",
                parts
                    .iter()
                    .map(|p| format!("https://h/files/{}", p.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            match parse_concat(&again) {
                Ok(TusConcat::Final { parts: p2, .. }) => assert_eq!(p2, parts),
                other => panic!("{again:?}: {other:?}"),
            }
        }
        Ok(TusConcat::None) => panic!("{s:?} parsed as no concatenation"),
        Err(_) => {}
    }
}

fn metadata(s: &str) {
    if let Ok(Some(name)) = metadata_file_name(s) {
        let again = format!("filename {}", B64.encode(name.as_bytes()));
        assert_eq!(metadata_file_name(&again).unwrap(), Some(name));
    }
    // Any name, sent as tus clients send it, comes back as it was.
    let meta = format!(
        "filetype {},filename {},name {}",
        B64.encode("application/octet-stream"),
        B64.encode(s),
        B64.encode("other")
    );
    assert_eq!(metadata_file_name(&meta).unwrap(), Some(s.to_owned()));
}

fn disposition(s: &str) {
    if FileName::parse(s).is_err() {
        return;
    }
    let cd = content_disposition(s);
    assert!(HeaderValue::from_str(&cd).is_ok(), "{cd:?}");
    let (head, encoded) = cd.split_once("; filename*=UTF-8''").unwrap();
    let fallback = head
        .strip_prefix("attachment; filename=\"")
        .and_then(|f| f.strip_suffix('"'))
        .unwrap();
    assert!(!fallback.contains(['"', '\\']), "{cd:?}");
    assert_eq!(
        percent_decode_str(encoded).decode_utf8().unwrap(),
        s,
        "{cd:?}"
    );
}

fn etags(s: &str) {
    let tag = "\"0123456789abcdef0123456789abcdef01234567\"";
    if s.split(',').any(|t| t.trim() == "*") {
        assert!(none_match(s, tag));
    }
    let list = format!("{s}, W/{tag}");
    assert!(none_match(&list, tag), "{list:?}");
}

fuzz_target!(|data: &[u8]| {
    uint(data);
    ietf_fields(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    range(s);
    md5_header(s);
    params(s);
    checksum(s);
    concat(s);
    metadata(s);
    disposition(s);
    etags(s);
    if let Ok(n) = part_number(s, "part") {
        assert!(n >= 1 && s.parse::<u32>() == Ok(n));
    }
});
