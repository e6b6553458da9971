//! The tus operations of the driver: create (known or deferred length, with or without a first
//! body), PATCH, concatenation, termination and expiry, each checked against the model.

use super::*;

impl Model {
    pub fn tus_index(&self, t: u8) -> Option<usize> {
        (!self.tus.is_empty()).then(|| usize::from(t) % self.tus.len())
    }

    /// The user file a finished tus upload became, read back and entered into the model.
    pub async fn tus_finished(
        &mut self,
        owner: usize,
        file_id: &FileId,
        bytes: Vec<u8>,
        name: &str,
    ) {
        let sha1 = sha1_of(&bytes);
        let file = WORLD
            .engine
            .files()
            .file(&self.users[owner], &sha1, Some(file_id))
            .await
            .expect("the finished upload's file");
        let got = read_all(&file, None).await.expect("read back");
        assert!(got == bytes, "tus file differs from the bytes sent");
        self.got_file(owner, file, Arc::new(bytes), name);
    }

    pub async fn tus_create(&mut self, op: &Op) {
        let Op::TusCreate {
            user,
            content,
            deferred,
            partial,
            name,
        } = op
        else {
            unreachable!()
        };
        let owner = self.user_index(*user);
        let source = usize::from(*content) % self.contents.len();
        let length = (!deferred).then_some(self.contents[source].len() as u64);
        let name = name.name();
        let mut req = TusCreate::new(length, String::new(), name.clone());
        if *partial {
            req = req.with_concat(TusConcat::Partial);
        }
        let res = WORLD
            .engine
            .uploads()
            .tus_create(&self.users[owner], req)
            .await;
        if FileName::parse(&name).is_err() {
            let e = res.expect_err("invalid name");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if self.open_sessions(owner) as u64 >= MAX_SESSIONS {
            trace("tus: session limit");
            let e = res.expect_err("session limit");
            assert!(matches!(e, Error::LimitReached { .. }), "{e:?}");
            return;
        }
        let record = res.expect("tus create");
        assert_eq!(record.offset, 0);
        assert_eq!(record.length, length);
        let done = length == Some(0) && !partial;
        assert_eq!(record.file_id.is_some(), done);
        let mut t = TusModel {
            id: record.id.clone(),
            owner,
            source,
            length,
            partial: *partial,
            is_final: false,
            received: Vec::new(),
            state: State::Open,
        };
        if let Some(f) = &record.file_id {
            trace("tus: empty upload complete at creation");
            t.state = State::Completed(f.clone());
            assert!(!staged(&t.id));
            self.tus_finished(owner, f, Vec::new(), &name).await;
        } else {
            assert!(staged(&t.id));
        }
        self.tus.push(t);
    }

    pub async fn tus_patch(&mut self, op: &Op) {
        let Op::TusPatch {
            user,
            upload,
            wrong_offset,
            len,
            declare,
            body,
            checksum,
        } = op
        else {
            unreachable!()
        };
        let Some(ti) = self.tus_index(*upload) else {
            return;
        };
        let who = self.user_index(*user);
        let t = &self.tus[ti];
        let source = &self.contents[t.source];
        let offset = t.received.len() as u64;
        let sent_offset = match wrong_offset {
            None => offset,
            Some(k) => offset + 1 + u64::from(*k),
        };
        let start = (offset as usize).min(source.len());
        let end = (start + usize::from(*len) % 4097).min(source.len());
        let expected = source[start..end].to_vec();
        let mut sent = expected.clone();
        let mut broken_at = None;
        match body {
            TusBody::Right => {}
            TusBody::Flip(i) => {
                if !sent.is_empty() {
                    let i = usize::from(*i) % sent.len();
                    sent[i] ^= 0x5a;
                }
            }
            TusBody::Broken(k) => broken_at = Some(usize::from(*k) % (sent.len() + 1)),
            TusBody::Extra(k) => sent.extend(std::iter::repeat_n(0xcd, usize::from(*k) + 1)),
        }
        let declared = match declare {
            LengthDecl::None => None,
            LengthDecl::Content => Some(source.len() as u64),
            LengthDecl::AfterThis => Some(offset + sent.len() as u64),
            LengthDecl::Other(n) => Some(u64::from(*n)),
        };
        let sum = match checksum {
            TusSum::None => None,
            TusSum::Sha1 => Some(Checksum::Sha1(Sha1::digest(&expected).into())),
            TusSum::Md5 => Some(Checksum::Md5(Md5::digest(&expected).into())),
            TusSum::Sha256 => Some(Checksum::Sha256(Sha256::digest(&expected).into())),
            TusSum::Wrong => Some(Checksum::Sha1(Sha1::digest(b"not the body").into())),
        };
        let res = WORLD
            .engine
            .uploads()
            .tus_append(
                &self.users[who],
                &t.id,
                sent_offset,
                declared,
                stream(sent.clone(), usize::from(*len) / 3 + 1, broken_at),
                AppendChecks::content(sum),
            )
            .await;
        if let Err(e) = &res {
            typed(e);
        }
        if t.state == State::Gone || who != t.owner {
            let e = res.expect_err("patch of an upload that is not the caller's");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        if t.is_final {
            let e = res.expect_err("patch of a final upload");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if sent_offset != offset {
            match res {
                Err(Error::OffsetMismatch { expected }) => assert_eq!(expected, offset),
                other => panic!("expected an offset mismatch, got {other:?}"),
            }
            return;
        }
        let length = match (t.length, declared) {
            (Some(a), Some(b)) if a != b => {
                let e = res.expect_err("conflicting Upload-Length");
                assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
                return;
            }
            (a, b) => a.or(b),
        };
        if length.is_some_and(|l| l < offset) {
            let e = res.expect_err("Upload-Length below the offset");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        if let State::Completed(_) = t.state {
            // The last PATCH repeated: the same answer (as tusd), nothing appended or published;
            // a byte past the end is too much, a body broken before any byte is incomplete.
            let got = broken_at.unwrap_or(sent.len()).min(sent.len());
            match res {
                Err(Error::TooLarge { .. }) if got > 0 => {}
                Err(Error::Incomplete(_)) if got == 0 && broken_at.is_some() => {}
                Ok(record) if got == 0 && broken_at.is_none() => {
                    assert_eq!(record.offset, offset);
                    assert!(record.file_id.is_some(), "{record:?}");
                }
                other => panic!("patch of a finished upload: {other:?}"),
            }
            trace("tus: patch after the end");
            return;
        }
        let limit = length.map_or(u64::MAX, |l| l - offset);
        let arrived = broken_at.unwrap_or(sent.len()) as u64;
        if arrived > limit {
            let e = res.expect_err("more than the upload's length");
            assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
            return;
        }
        // A broken body keeps what arrived, unless it came with a checksum; the length it
        // declared is not taken.
        let (kept, length) = match broken_at {
            Some(k) if matches!(checksum, TusSum::None) => (k.min(sent.len()), t.length),
            Some(_) => (0, t.length),
            None => (sent.len(), length),
        };
        let completes = length == Some(offset + kept as u64) && !t.partial;
        if broken_at.is_some() && (kept == 0 || !completes) {
            let e = res.expect_err("broken body");
            assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
            if kept > 0 {
                let t = &mut self.tus[ti];
                t.received.extend_from_slice(&sent[..kept]);
                trace("tus: broken patch kept what arrived");
            }
            return;
        }
        let sum_ok = match checksum {
            TusSum::None => true,
            TusSum::Wrong => false,
            _ => sent == expected,
        };
        if !sum_ok {
            let e = res.expect_err("checksum mismatch");
            assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
            return;
        }
        let record = res.expect("patch");
        let t = &mut self.tus[ti];
        t.received.extend_from_slice(&sent[..kept]);
        t.length = length;
        assert_eq!(record.offset, t.received.len() as u64);
        assert_eq!(record.length, length);
        let done = length == Some(record.offset) && !t.partial;
        assert_eq!(record.file_id.is_some(), done, "{record:?}");
        trace(if done {
            "tus: patch completed the upload"
        } else {
            "tus: patch stored"
        });
        if let Some(f) = record.file_id {
            t.state = State::Completed(f.clone());
            assert!(!staged(&t.id));
            let (owner, bytes) = (t.owner, t.received.clone());
            let name = record.file_name.clone();
            self.tus_finished(owner, &f, bytes, &name).await;
        }
    }

    pub async fn tus_concat(&mut self, user: u8, parts: &[u8], name: &NameChoice) {
        let who = self.user_index(user);
        let picked: Vec<usize> = if self.tus.is_empty() {
            Vec::new()
        } else {
            parts
                .iter()
                .map(|&p| usize::from(p) % self.tus.len())
                .collect()
        };
        let ids: Vec<UploadId> = picked.iter().map(|&i| self.tus[i].id.clone()).collect();
        let header = format!(
            "final;{}",
            ids.iter()
                .map(|i| format!("/files/{}", i.as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let name = name.name();
        let req = TusCreate::new(None, String::new(), name.clone()).with_concat(TusConcat::Final {
            parts: ids,
            header: header.clone(),
        });
        let res = WORLD
            .engine
            .uploads()
            .tus_create(&self.users[who], req)
            .await;
        let mut distinct = picked.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if FileName::parse(&name).is_err() || picked.is_empty() || distinct.len() != picked.len() {
            let e = res.expect_err("invalid name, no parts, or a part named twice");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        for &i in &picked {
            let t = &self.tus[i];
            if t.state == State::Gone || t.owner != who {
                let e = res.expect_err("a part that is not the caller's");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                return;
            }
            if !t.partial || t.length != Some(t.received.len() as u64) {
                let e = res.expect_err("a part that is not a finished partial upload");
                assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
                return;
            }
        }
        let record = res.expect("concatenation");
        trace("tus: concatenated");
        let bytes: Vec<u8> = picked
            .iter()
            .flat_map(|&i| self.tus[i].received.iter().copied())
            .collect();
        assert_eq!(record.offset, bytes.len() as u64);
        assert_eq!(record.length, Some(bytes.len() as u64));
        assert_eq!(record.concat, header);
        let file_id = record.file_id.clone().expect("a final upload is complete");
        for &i in &picked {
            self.tus[i].state = State::Gone;
            assert!(!staged(&self.tus[i].id), "a concatenated part stays staged");
        }
        self.tus.push(TusModel {
            id: record.id,
            owner: who,
            source: 0,
            length: Some(bytes.len() as u64),
            partial: false,
            is_final: true,
            received: bytes.clone(),
            state: State::Completed(file_id.clone()),
        });
        self.tus_finished(who, &file_id, bytes, &name).await;
    }

    pub async fn tus_terminate(&mut self, user: u8, upload: u8) {
        let Some(ti) = self.tus_index(upload) else {
            return;
        };
        let who = self.user_index(user);
        let t = &mut self.tus[ti];
        let res = WORLD
            .engine
            .uploads()
            .tus_terminate(&self.users[who], &t.id)
            .await;
        if t.state == State::Gone || who != t.owner {
            let e = res.expect_err("terminate of an upload that is not the caller's");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        res.expect("terminate");
        t.state = State::Gone;
        assert!(!staged(&t.id), "staged bytes outlive the termination");
    }

    pub async fn tus_expire(&mut self, upload: u8) {
        let Some(ti) = self.tus_index(upload) else {
            return;
        };
        let t = &mut self.tus[ti];
        let n = expire_now(&t.id).await;
        assert_eq!(n, usize::from(t.state != State::Gone));
        t.state = State::Gone;
        assert!(!staged(&t.id), "staged bytes outlive the expiry");
    }
}
