//! The session operations of the driver: init (with instant claims and proofs), status,
//! complete, abort and expiry of upload sessions, checked against the model.

use super::*;

impl Model {
    pub async fn init(&mut self, op: &Op) {
        let Op::Init {
            user,
            content,
            claim,
            name,
            chunk,
            answer,
        } = op
        else {
            unreachable!()
        };
        let owner = self.user_index(*user);
        let source = usize::from(*content) % self.contents.len();
        let size = self.contents[source].len() as u64;
        let sha1 = match usize::from(*claim) % (self.contents.len() + 1) {
            i if i < self.contents.len() => self.sha1s[i].clone(),
            _ => sha1_of(b"content nobody sends"),
        };
        let name = name.name();
        let chunk_size = match chunk {
            ChunkChoice::Default => None,
            ChunkChoice::Min => Some(CH),
            ChunkChoice::Double => Some(2 * CH),
            ChunkChoice::Any(n) => Some(u64::from(*n)),
        };
        let req = InitRequest::new(name.clone(), size, sha1.clone(), chunk_size);
        let res = WORLD
            .engine
            .uploads()
            .init_upload(&self.users[owner], req)
            .await;
        let valid_name = FileName::parse(&name).is_ok();
        let plan = plan_chunks(size, chunk_size);
        if !valid_name || plan.is_err() {
            let e = res.expect_err("invalid name or chunk size accepted");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        let stored = self
            .stored
            .get(&sha1)
            .filter(|b| b.len() as u64 == size)
            .cloned();
        if let Some(bytes) = stored {
            let outcome = res.expect("instant claim");
            let challenge = match outcome {
                InitOutcome::Instant(file) => {
                    assert_eq!(size, 0, "only the empty file is linked without a proof");
                    trace("init: empty file linked");
                    self.got_file(owner, file, bytes, &name);
                    return;
                }
                InitOutcome::Challenge(c) => c,
                InitOutcome::Session { .. } => panic!("stored content must be challenged"),
            };
            assert!(size > 0);
            assert!(!challenge.ranges.is_empty());
            let mut right = Vec::new();
            for r in &challenge.ranges {
                assert!(
                    r.start < r.end && r.end <= size,
                    "range {r:?} outside {size}"
                );
                right.push(hex::encode(Sha256::digest(
                    &bytes[r.start as usize..r.end as usize],
                )));
            }
            let (id, digests, correct) = match answer {
                Answer::Ignore => return,
                Answer::Right => (challenge.id.clone(), right, true),
                Answer::Wrong(i) => {
                    let mut d = right;
                    let i = usize::from(*i) % d.len();
                    d[i] = hex::encode(Sha256::digest(b"guess"));
                    (challenge.id.clone(), d, false)
                }
                Answer::UnknownId(s) => {
                    if *s == challenge.id {
                        return;
                    }
                    (s.clone(), right, false)
                }
            };
            let res = WORLD
                .engine
                .uploads()
                .prove(&self.users[owner], &id, &digests)
                .await;
            if self.proof_failures[owner] >= proof::MAX_FAILURES {
                trace("prove: too many failures");
                let e = res.expect_err("proof after too many failures");
                assert!(matches!(e, Error::TooManyRequests { .. }), "{e:?}");
                return;
            }
            if matches!(answer, Answer::UnknownId(_)) {
                let e = res.expect_err("unknown challenge");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                return;
            }
            match res.expect("proof") {
                Proof::Linked(file) => {
                    assert!(correct, "a wrong proof linked the file");
                    trace("prove: linked");
                    self.got_file(owner, file, bytes, &name);
                }
                Proof::Refused(req) => {
                    assert!(!correct, "a right proof was refused");
                    trace("prove: refused");
                    self.proof_failures[owner] += 1;
                    // Falls back to a normal upload of the bytes.
                    let res = WORLD
                        .engine
                        .uploads()
                        .init_upload_bytes(&self.users[owner], req)
                        .await;
                    self.session_opened(owner, source, size, sha1, name, chunk_size, res);
                }
            }
            return;
        }
        self.session_opened(owner, source, size, sha1, name, chunk_size, res);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn session_opened(
        &mut self,
        owner: usize,
        source: usize,
        size: u64,
        sha1: Sha1Hex,
        name: String,
        chunk_size: Option<u64>,
        res: Result<InitOutcome, Error>,
    ) {
        let resumed = self.sessions.iter().position(|s| {
            s.owner == owner && s.state == State::Open && s.sha1 == sha1 && s.size == size
        });
        if resumed.is_none() && self.open_sessions(owner) as u64 >= MAX_SESSIONS {
            trace("init: session limit");
            let e = res.expect_err("session limit");
            assert!(matches!(e, Error::LimitReached { .. }), "{e:?}");
            return;
        }
        let InitOutcome::Session { status, created } = res.expect("init") else {
            panic!("fresh content cannot be instant")
        };
        assert_eq!(created, resumed.is_none());
        if let Some(i) = resumed {
            trace("init: resumed");
            let s = &self.sessions[i];
            assert_eq!(status.session.id, s.id, "resumed the open session");
            assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
            return;
        }
        let (chunk, count) = plan_chunks(size, chunk_size).unwrap();
        trace(&format!("init: new session of {count} parts"));
        assert_eq!(status.session.chunk_size, chunk);
        assert_eq!(status.session.chunk_count, count);
        assert_eq!(status.session.size, size);
        assert_eq!(status.session.sha1, sha1);
        assert!(status.received.is_empty());
        assert!(self.sessions.iter().all(|s| s.id != status.session.id));
        assert!(staged(&status.session.id));
        self.sessions.push(SessionModel {
            id: status.session.id,
            owner,
            name,
            size,
            sha1,
            chunk,
            count,
            source,
            acked: BTreeMap::new(),
            state: State::Open,
        });
    }

    pub async fn status(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        let who = self.user_index(user);
        let s = &self.sessions[si];
        let res = WORLD
            .engine
            .uploads()
            .upload_status(&self.users[who], &s.id)
            .await;
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("status of a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        let status = res.expect("status");
        assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
    }

    pub async fn complete(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        self.complete_at(user, si).await;
    }

    pub async fn complete_at(&mut self, user: u8, si: usize) {
        let who = self.user_index(user);
        let res = WORLD
            .engine
            .uploads()
            .complete_upload(&self.users[who], &self.sessions[si].id)
            .await;
        if let Err(e) = &res {
            typed(e);
        }
        let s = &self.sessions[si];
        if who != s.owner {
            let e = res.expect_err("another user's session completed");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        match &s.state {
            State::Gone => {
                let e = res.expect_err("complete after abort or expiry");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            }
            State::Completed(id) => {
                if self.files.iter().any(|f| &f.file.id == id) {
                    assert_eq!(&res.expect("repeated complete").id, id);
                } else {
                    let e = res.expect_err("complete of a session whose file was deleted");
                    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                }
            }
            State::Open => {
                let missing = s.missing();
                if !missing.is_empty() {
                    match res {
                        Err(Error::MissingParts { missing: got }) => {
                            trace("complete: missing parts");
                            assert_eq!(got, missing)
                        }
                        other => panic!("expected missing parts {missing:?}, got {other:?}"),
                    }
                    return;
                }
                let assembled: Vec<u8> = s.acked.values().flatten().copied().collect();
                assert_eq!(assembled.len() as u64, s.size);
                let id = s.id.clone();
                let sha1 = s.sha1.clone();
                let name = s.name.clone();
                let owner = s.owner;
                if sha1_of(&assembled) != sha1 {
                    let e = res.expect_err("bytes that do not match the claimed sha1");
                    assert!(matches!(e, Error::Sha1Mismatch), "{e:?}");
                    trace("complete: sha1 mismatch");
                    assert!(!staged(&id), "refused bytes stay staged");
                    self.sessions[si].state = State::Gone;
                    if !self.stored.contains_key(&sha1) {
                        assert!(WORLD.meta.blob(&sha1).await.unwrap().is_none());
                        assert_eq!(blob_files_of(&sha1), 0, "refused bytes were kept");
                    }
                    return;
                }
                let file = res.expect("complete");
                trace(&format!("complete: {} bytes", file.size));
                assert!(!staged(&id), "staged bytes outlive the completion");
                let got = read_all(&file, None).await.expect("read back");
                assert!(
                    got == assembled,
                    "completed file differs from the acknowledged parts"
                );
                self.sessions[si].state = State::Completed(file.id.clone());
                self.got_file(owner, file, Arc::new(assembled), &name);
            }
        }
    }

    pub async fn abort(&mut self, user: u8, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        self.abort_at(user, si).await;
    }

    pub async fn abort_at(&mut self, user: u8, si: usize) {
        let who = self.user_index(user);
        let s = &mut self.sessions[si];
        let res = WORLD
            .engine
            .uploads()
            .abort_upload(&self.users[who], &s.id)
            .await;
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("abort of a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        res.expect("abort");
        s.state = State::Gone;
        assert!(!staged(&s.id), "staged bytes outlive the abort");
    }

    pub async fn expire(&mut self, session: u8) {
        let Some(si) = self.session_index(session) else {
            return;
        };
        let s = &mut self.sessions[si];
        let n = expire_now(&s.id).await;
        if s.state == State::Open {
            trace("expire: swept");
            assert_eq!(n, 1);
            s.state = State::Gone;
        } else {
            assert_eq!(n, 0);
        }
        assert!(!staged(&s.id), "staged bytes outlive the expiry");
    }
}
