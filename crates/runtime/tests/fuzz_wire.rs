//! Property test: the internal frame decoder fed random bytes, mutated valid frames, and
//! mutated payloads with a correct checksum (so that the postcard decoding of every message
//! is reached), whole and split at random points. Nothing may panic; a declared length over
//! the limit is refused before its payload is awaited.
//!
//! Runs for `TANDEM_FUZZ_SECS` seconds (default 10) from seed `TANDEM_FUZZ_SEED` (default:
//! from the clock), one seed per input; a failing seed is printed with the command that
//! replays it alone. CI runs it (README, "Fuzzing").

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tandem_protocol::message::{Forward, LogEntry, Op, Ping, ViewReply};
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, LogPos, Message, OpIndex, ServerId, View, ViewNum,
    VsAddr,
};
use tandem_runtime::wire::{Envelope, FrameError, HEADER_BYTES, decode_frame, encode_frame};

const MAX_FRAME_BYTES: usize = 4096;

fn envelopes() -> Vec<Envelope> {
    let a = ServerId::new("127.0.0.1:7101");
    let entry = LogEntry {
        pos: LogPos {
            index: OpIndex(1),
            view: ViewNum(1),
        },
        now_ms: 5,
        random: 7,
        op: Op::Expire {
            keys: vec![Bytes::from("k")],
        },
        limits: Default::default(),
    };
    vec![
        Envelope {
            from: Endpoint::Server(a.clone()),
            msg: Message::Ping(Ping {
                group: GroupId(0),
                server: a.clone(),
                viewnum: ViewNum(3),
                incarnation: Incarnation(9),
                client_addr: None,
                config_done: tandem_protocol::ConfigNum(0),
                cluster_epoch: 0,
            }),
        },
        Envelope {
            from: Endpoint::ViewService(VsAddr::new("127.0.0.1:7000")),
            msg: Message::PingReply(ViewReply {
                group: GroupId(0),
                view: Some(View {
                    num: ViewNum(3),
                    primary: a.clone(),
                    backups: vec![ServerId::new("b")],
                }),
                member_incarnation: Some(Incarnation(9)),
                cluster: None,
            }),
        },
        Envelope {
            from: Endpoint::Server(a),
            msg: Message::Forward(Forward {
                view: ViewNum(1),
                prev: LogPos::EMPTY,
                entries: Arc::new(vec![entry]),
            }),
        },
        Envelope {
            from: Endpoint::Client(ClientId(4)),
            msg: Message::GetView { group: GroupId(2) },
        },
    ]
}

fn frame_with_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(1);
    out.put_u32(payload.len() as u32);
    out.put_u32(crc32fast::hash(payload));
    out.extend_from_slice(payload);
    out.to_vec()
}

fn mutate(rng: &mut SplitMix64, bytes: &mut Vec<u8>, from: usize) {
    for _ in 0..=rng.below(4) {
        if bytes.len() <= from {
            bytes.push(rng.below(256) as u8);
            continue;
        }
        let at = from + rng.below((bytes.len() - from) as u64) as usize;
        match rng.below(4) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = [0, 0xff, 0x80, 0x7f][rng.below(4) as usize],
            2 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, rng.below(256) as u8),
        }
    }
}

/// [`tandem_testkit::fuzz_for`] for this binary.
fn fuzz_for(test: &str, one: impl FnMut(u64)) {
    tandem_testkit::fuzz_for("-p tandem-runtime --test fuzz_wire", test, one);
}

#[test]
fn frames_random_and_mutated_never_panic() {
    let envelopes = envelopes();
    fuzz_for("frames_random_and_mutated_never_panic", |seed| {
        let mut rng = SplitMix64::new(seed);
        let wire = match rng.below(4) {
            0 => (0..rng.below(64)).map(|_| rng.below(256) as u8).collect(),
            1 => {
                let e = &envelopes[rng.below(envelopes.len() as u64) as usize];
                let mut bytes = encode_frame(e, MAX_FRAME_BYTES).expect("fits").to_vec();
                mutate(&mut rng, &mut bytes, 0);
                bytes
            }
            _ => {
                // A mutated payload under a correct checksum: postcard decoding is reached.
                let e = &envelopes[rng.below(envelopes.len() as u64) as usize];
                let frame = encode_frame(e, MAX_FRAME_BYTES).expect("fits");
                let mut payload = frame[HEADER_BYTES..].to_vec();
                mutate(&mut rng, &mut payload, 0);
                frame_with_payload(&payload)
            }
        };
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        'feed: while !rest.is_empty() {
            let take = (rng.below(rest.len() as u64) as usize + 1).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            for _ in 0..=wire.len() {
                let before = buf.len();
                match decode_frame(&mut buf, MAX_FRAME_BYTES) {
                    Ok(Some(_)) => assert!(buf.len() < before),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    });
}

#[test]
fn a_declared_length_over_the_limit_is_refused_from_the_header() {
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u32(u32::MAX);
    buf.put_u32(0);
    assert_eq!(
        decode_frame(&mut buf, MAX_FRAME_BYTES),
        Err(FrameError::TooLarge {
            len: u32::MAX as usize,
            max: MAX_FRAME_BYTES
        })
    );
}

/// Every input the `wire_frame` cargo-fuzz target crashed on (`fuzz/regressions/`), replayed
/// as it is and as the payload of a well-formed frame.
#[test]
fn fuzz_regressions_replay_without_panic() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/wire_frame");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let data = std::fs::read(entry.path()).expect("readable regression input");
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode_frame(&mut buf, 1 << 20) {}
        let mut framed = BytesMut::from(&frame_with_payload(&data)[..]);
        let _ = decode_frame(&mut framed, 1 << 20);
    }
}
