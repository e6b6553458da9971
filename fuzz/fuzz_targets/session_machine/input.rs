//! The operations a case is made of, decoded from the fuzzer's bytes: what `session_machine`
//! does to the engine (the driver in `session_machine.rs` runs them; `model.rs` predicts them).

use super::*;

#[derive(Debug, Clone, Copy)]
pub enum SizeChoice {
    Empty,
    Tiny(u8),
    Small(u16),
    OneChunk,
    TwoChunks(u16),
    ThreeChunks(u16),
}

/// Mostly tiny files (fast); parts of several chunks (256 KiB each) a quarter of the time.
impl<'a> Arbitrary<'a> for SizeChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=11u8)? {
            0 => SizeChoice::Empty,
            1..=4 => SizeChoice::Tiny(u.arbitrary()?),
            5..=7 => SizeChoice::Small(u.arbitrary()?),
            8 => SizeChoice::OneChunk,
            9..=10 => SizeChoice::TwoChunks(u.arbitrary()?),
            _ => SizeChoice::ThreeChunks(u.arbitrary()?),
        })
    }
}

impl SizeChoice {
    pub fn bytes(self) -> u64 {
        match self {
            SizeChoice::Empty => 0,
            SizeChoice::Tiny(n) => 1 + u64::from(n % 64),
            SizeChoice::Small(n) => 1 + u64::from(n % 4096),
            SizeChoice::OneChunk => CH,
            SizeChoice::TwoChunks(n) => CH + 1 + u64::from(n % 4096),
            SizeChoice::ThreeChunks(n) => 2 * CH + 1 + u64::from(n % 4096),
        }
    }
}

#[derive(Debug)]
pub enum NameChoice {
    Plain(u8),
    Fuzzed(String),
}

impl NameChoice {
    pub fn name(&self) -> String {
        match self {
            NameChoice::Plain(n) => format!("f{}.bin", n % 4),
            NameChoice::Fuzzed(s) => s.clone(),
        }
    }
}

#[derive(Debug)]
pub enum ChunkChoice {
    Default,
    Min,
    Double,
    Any(u32),
}

#[derive(Arbitrary, Debug)]
pub enum Answer {
    Right,
    /// One digest changed.
    Wrong(u8),
    /// Not a challenge id we handed out.
    UnknownId(String),
    /// Leave the challenge unanswered.
    Ignore,
}

#[derive(Debug)]
pub enum Body {
    Right,
    /// One byte changed: same length, wrong content.
    Flip(u16),
    /// Cut short by this many bytes (at least one).
    Short(u16),
    /// This many bytes too many (at least one).
    Long(u8),
    /// The client goes away after this many bytes.
    Broken(u16),
}

#[derive(Debug)]
pub enum DigestChoice {
    None,
    Md5Right,
    Md5Wrong,
    Sha1Right,
    Sha1Wrong,
}

#[derive(Debug)]
pub enum Op {
    Init {
        user: u8,
        content: u8,
        /// Which content's SHA1 is claimed (beyond the contents: a SHA1 of nothing we have).
        claim: u8,
        name: NameChoice,
        chunk: ChunkChoice,
        answer: Answer,
    },
    Part {
        user: u8,
        session: u8,
        /// Taken modulo count + 2, so 0 and count + 1 (out of range) occur.
        part: u8,
        body: Body,
        digest: DigestChoice,
        /// Bytes per body chunk (the stream arrives in pieces).
        split: u16,
    },
    /// Two writers of one part of an open session: writer A's body stops after `held` bytes;
    /// writer B sends the whole part; then the session is completed, aborted or left; then
    /// A's body goes on.
    PartRace {
        session: u8,
        part: u8,
        held: u16,
        a_flip: Option<u16>,
        b_flip: Option<u16>,
        between: Between,
    },
    Status {
        user: u8,
        session: u8,
    },
    Complete {
        user: u8,
        session: u8,
    },
    Abort {
        user: u8,
        session: u8,
    },
    /// The clock passes the session's expiry; the sweeper runs.
    Expire {
        session: u8,
    },
    Read {
        user: u8,
        file: u8,
        range: Option<(bool, u32, Option<u32>)>,
    },
    Delete {
        file: u8,
    },
    /// tus `POST`: length known or deferred, a whole upload or a partial one.
    TusCreate {
        user: u8,
        content: u8,
        deferred: bool,
        partial: bool,
        name: NameChoice,
    },
    /// tus `PATCH`.
    TusPatch {
        user: u8,
        upload: u8,
        /// `None`: the upload's offset; else that offset plus 1 + this.
        wrong_offset: Option<u8>,
        len: u16,
        declare: LengthDecl,
        body: TusBody,
        checksum: TusSum,
    },
    /// tus `POST` with `Upload-Concat: final;…`.
    TusConcat {
        user: u8,
        parts: Vec<u8>,
        name: NameChoice,
    },
    TusTerminate {
        user: u8,
        upload: u8,
    },
    TusExpire {
        upload: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Between {
    Nothing,
    Complete,
    Abort,
}

#[derive(Arbitrary, Debug)]
pub enum LengthDecl {
    None,
    /// The source content's length.
    Content,
    /// The bytes the upload holds after this request.
    AfterThis,
    Other(u16),
}

#[derive(Arbitrary, Debug)]
pub enum TusBody {
    Right,
    Flip(u16),
    /// Breaks off after this many bytes.
    Broken(u16),
    /// Past the source content's end.
    Extra(u8),
}

#[derive(Arbitrary, Debug)]
pub enum TusSum {
    None,
    Sha1,
    Md5,
    Sha256,
    Wrong,
}

// Weighted choices: the common, successful case most of the time, so that sequences get far.
impl<'a> Arbitrary<'a> for NameChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.ratio(1, 8)? {
            NameChoice::Fuzzed(u.arbitrary()?)
        } else {
            NameChoice::Plain(u.arbitrary()?)
        })
    }
}

impl<'a> Arbitrary<'a> for ChunkChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=2 => ChunkChoice::Default,
            3..=5 => ChunkChoice::Min,
            6 => ChunkChoice::Double,
            _ => ChunkChoice::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Body {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=11u8)? {
            0..=7 => Body::Right,
            8 => Body::Flip(u.arbitrary()?),
            9 => Body::Short(u.arbitrary()?),
            10 => Body::Long(u.arbitrary()?),
            _ => Body::Broken(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for DigestChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=3 => DigestChoice::None,
            4 => DigestChoice::Md5Right,
            5 => DigestChoice::Sha1Right,
            6 => DigestChoice::Md5Wrong,
            _ => DigestChoice::Sha1Wrong,
        })
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=32u8)? {
            31..=32 => Op::PartRace {
                session: u.arbitrary()?,
                part: u.arbitrary()?,
                held: u.arbitrary()?,
                a_flip: u.arbitrary()?,
                b_flip: u.arbitrary()?,
                between: u.arbitrary()?,
            },
            0..=3 => Op::Init {
                user: u.arbitrary()?,
                content: u.arbitrary()?,
                claim: u.arbitrary()?,
                name: u.arbitrary()?,
                chunk: u.arbitrary()?,
                answer: u.arbitrary()?,
            },
            4..=11 => Op::Part {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
                part: u.arbitrary()?,
                body: u.arbitrary()?,
                digest: u.arbitrary()?,
                split: u.arbitrary()?,
            },
            12 => Op::Status {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            13..=14 => Op::Complete {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            15 => Op::Abort {
                user: u.arbitrary()?,
                session: u.arbitrary()?,
            },
            16 => Op::Expire {
                session: u.arbitrary()?,
            },
            17..=18 => Op::Read {
                user: u.arbitrary()?,
                file: u.arbitrary()?,
                range: u.arbitrary()?,
            },
            19 => Op::Delete {
                file: u.arbitrary()?,
            },
            20..=21 => Op::TusCreate {
                user: u.arbitrary()?,
                content: u.arbitrary()?,
                deferred: u.arbitrary()?,
                partial: u.ratio(1, 3)?,
                name: u.arbitrary()?,
            },
            22..=27 => Op::TusPatch {
                user: u.arbitrary()?,
                upload: u.arbitrary()?,
                wrong_offset: if u.ratio(1, 8)? {
                    Some(u.arbitrary()?)
                } else {
                    None
                },
                len: u.arbitrary()?,
                declare: u.arbitrary()?,
                body: if u.ratio(2, 3)? {
                    TusBody::Right
                } else {
                    u.arbitrary()?
                },
                checksum: u.arbitrary()?,
            },
            28 => Op::TusConcat {
                user: u.arbitrary()?,
                parts: (0..u.int_in_range(0..=4u8)?)
                    .map(|_| u.arbitrary())
                    .collect::<arbitrary::Result<_>>()?,
                name: u.arbitrary()?,
            },
            29 => Op::TusTerminate {
                user: u.arbitrary()?,
                upload: u.arbitrary()?,
            },
            _ => Op::TusExpire {
                upload: u.arbitrary()?,
            },
        })
    }
}

#[derive(Debug)]
pub struct Case {
    pub contents: [(SizeChoice, u8); 3],
    pub ops: Vec<Op>,
}

impl Case {
    /// Operations until the input runs out (not a length prefix: random inputs get long runs).
    pub fn decode(data: &[u8]) -> arbitrary::Result<Case> {
        let mut u = Unstructured::new(data);
        let contents = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(u.arbitrary()?);
        }
        Ok(Case { contents, ops })
    }
}
