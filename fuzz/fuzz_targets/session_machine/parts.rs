//! The part operations of the driver: one part upload (right, wrong, short, long, cut off, with
//! right or wrong digests) and the race of two writers of one part, checked against the model.

use super::*;

impl Model {
    pub async fn part(&mut self, op: &Op) {
        let Op::Part {
            user,
            session,
            part,
            body,
            digest,
            split,
        } = op
        else {
            unreachable!()
        };
        let Some(si) = self.session_index(*session) else {
            return;
        };
        let who = self.user_index(*user);
        let s = &self.sessions[si];
        let n = u32::from(*part) % (s.count + 2);
        let expected: Vec<u8> = if (1..=s.count).contains(&n) {
            self.contents[s.source][s.part_range(n)].to_vec()
        } else {
            Vec::new()
        };
        let mut sent = expected.clone();
        let mut broken_at = None;
        match body {
            Body::Right => {}
            Body::Flip(i) => {
                if !sent.is_empty() {
                    let i = usize::from(*i) % sent.len();
                    sent[i] ^= 0x5a;
                }
            }
            Body::Short(k) => {
                let cut = (usize::from(*k) % 4096 + 1).min(sent.len());
                sent.truncate(sent.len() - cut);
            }
            Body::Long(k) => sent.extend(std::iter::repeat_n(0xab, usize::from(*k) + 1)),
            Body::Broken(k) => broken_at = Some(usize::from(*k) % (sent.len() + 1)),
        }
        let wrong_digest_of = |b: &[u8]| {
            let mut v = b.to_vec();
            v.push(1);
            v
        };
        let part_digest = match digest {
            DigestChoice::None => None,
            DigestChoice::Md5Right => Some(Checksum::Md5(Md5::digest(&expected).into())),
            DigestChoice::Md5Wrong => Some(Checksum::Md5(
                Md5::digest(wrong_digest_of(&expected)).into(),
            )),
            DigestChoice::Sha1Right => Some(Checksum::Sha1(Sha1::digest(&expected).into())),
            DigestChoice::Sha1Wrong => Some(Checksum::Sha1(
                Sha1::digest(wrong_digest_of(&expected)).into(),
            )),
        };
        let res = WORLD
            .engine
            .uploads()
            .put_part(
                &self.users[who],
                &s.id,
                n,
                stream(sent.clone(), usize::from(*split) + 1, broken_at),
                part_digest,
            )
            .await;
        let s = &mut self.sessions[si];
        if s.state != State::Open || who != s.owner {
            let e = res.expect_err("part for a session that is not the caller's open one");
            assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
            return;
        }
        if n == 0 || n > s.count {
            let e = res.expect_err("part number out of range");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
            return;
        }
        // A write that fails leaves the part as it was (its bytes went to an attempt of its
        // own); one that succeeds replaces it.
        let digest_ok = match digest {
            DigestChoice::None => true,
            DigestChoice::Md5Right | DigestChoice::Sha1Right => sent == expected,
            DigestChoice::Md5Wrong | DigestChoice::Sha1Wrong => false,
        };
        if broken_at.is_some() {
            let e = res.expect_err("broken body");
            assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
        } else if sent.len() != expected.len() {
            let e = res.expect_err("wrong length");
            assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        } else if !digest_ok {
            let e = res.expect_err("digest mismatch");
            assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
        } else {
            trace("part: acknowledged");
            let status = res.expect("part");
            s.acked.insert(n, sent);
            assert_eq!(status.received, s.acked.keys().copied().collect::<Vec<_>>());
            assert_eq!(status.missing, s.count - s.acked.len() as u32);
            assert_eq!(
                status.bytes_received,
                s.acked
                    .keys()
                    .map(|&k| s.part_range(k).len() as u64)
                    .sum::<u64>()
            );
        }
    }

    pub async fn part_race(&mut self, op: &Op) {
        let Op::PartRace {
            session,
            part,
            held,
            a_flip,
            b_flip,
            between,
        } = op
        else {
            unreachable!()
        };
        // An open session, written by its owner: the race is between two acceptable writes.
        let open: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].state == State::Open)
            .collect();
        if open.is_empty() {
            return;
        }
        let si = open[usize::from(*session) % open.len()];
        let s = &self.sessions[si];
        let (owner, count, id) = (s.owner, s.count, s.id.clone());
        let n = u32::from(*part) % count + 1;
        let expected = self.contents[s.source][s.part_range(n)].to_vec();
        let body = |flip: &Option<u16>| {
            let mut b = expected.clone();
            if let (Some(i), false) = (flip, b.is_empty()) {
                let i = usize::from(*i) % b.len();
                b[i] ^= 0x5a;
            }
            b
        };
        let (a, b) = (body(a_flip), body(b_flip));
        // Writer A, fed through a channel: `held` bytes now, the rest later.
        let held = usize::from(*held) % (a.len() + 1);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = started.clone();
        let a_body = rx
            .map(move |chunk| {
                seen.store(true, Ordering::SeqCst);
                chunk
            })
            .boxed();
        let user = self.users[owner].clone();
        let a_id = id.clone();
        let writer_a = tokio::spawn(async move {
            WORLD
                .engine
                .uploads()
                .put_part(&user, &a_id, n, a_body, None)
                .await
        });
        tx.unbounded_send(Ok(Bytes::copy_from_slice(&a[..held])))
            .unwrap();
        // Let A get as far as reading its body (it holds its attempt then).
        for _ in 0..10_000 {
            if started.load(Ordering::SeqCst) || writer_a.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            started.load(Ordering::SeqCst),
            "writer A never read its body"
        );
        // Writer B: the whole part.
        let res = WORLD
            .engine
            .uploads()
            .put_part(
                &self.users[owner],
                &id,
                n,
                stream(b.clone(), 4096, None),
                None,
            )
            .await;
        let status = res.expect("writer B");
        self.sessions[si].acked.insert(n, b);
        assert!(status.received.contains(&n));
        let owner_u8 = u8::try_from(owner).expect("few users");
        match between {
            Between::Complete => {
                trace("race: complete between the writers");
                self.complete_at(owner_u8, si).await;
            }
            Between::Abort => {
                trace("race: abort between the writers");
                self.abort_at(owner_u8, si).await;
            }
            Between::Nothing => {}
        }
        tx.unbounded_send(Ok(Bytes::copy_from_slice(&a[held..])))
            .unwrap();
        drop(tx);
        let res = writer_a.await.unwrap();
        match &self.sessions[si].state {
            State::Open => {
                // A's attempt was committed after B's: it is the part now.
                trace("race: the later writer's part counts");
                let status = res.expect("writer A");
                assert!(status.received.contains(&n));
                self.sessions[si].acked.insert(n, a);
            }
            State::Completed(file_id) => {
                let e = res.expect_err("a write after complete");
                assert!(matches!(e, Error::NotFound { .. } | Error::Busy), "{e:?}");
                trace("race: late write refused after complete");
                // What was published is unchanged by the late write.
                if let Some(f) = self.files.iter().find(|f| &f.file.id == file_id) {
                    let got = read_all(&f.file, None).await.expect("read back");
                    assert!(got == *f.bytes, "a late write reached published bytes");
                }
            }
            State::Gone => {
                let e = res.expect_err("a write after abort");
                assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
                trace("race: late write refused after abort");
                assert!(!staged(&id), "a late write left staged bytes");
            }
        }
    }
}
