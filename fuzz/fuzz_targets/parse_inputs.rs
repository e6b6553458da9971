//! Validators of client input never panic, and what they accept holds their invariants.
#![no_main]

use chunkvault_engine::{FileName, RangeRequest, Sha1Hex, Username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = FileName::parse(s) {
        let n = name.as_str();
        assert!(!n.is_empty() && n.len() <= 255);
        assert!(!n.contains(['/', '\\']) && !n.chars().any(char::is_control));
        assert!(n != "." && n != "..");
    }
    if let Ok(h) = Sha1Hex::parse(s) {
        assert_eq!(h.as_str().len(), 40);
        assert!(h
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
    if let Ok(u) = Username::parse(s) {
        assert!((3..=64).contains(&u.as_str().len()));
    }
    if data.len() >= 17 {
        let n = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
        let size = n(9) >> (data[0] % 64);
        let req = if data[0] & 1 == 0 {
            RangeRequest::From {
                start: n(1),
                last: (data[0] & 2 == 0).then(|| n(1) ^ n(9)),
            }
        } else {
            RangeRequest::Suffix(n(1))
        };
        if let Ok(r) = req.resolve(size) {
            assert!(r.start < r.end && r.end <= size);
        }
    }
});
