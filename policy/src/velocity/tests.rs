#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const HOUR: u64 = 3_600;

/// Records a signature of `value` wei at `time` in one counter.
fn add(v: &mut Velocity, scope: Scope, subject: &str, window: u64, time: u64, value: u64) -> bool {
    v.record(time, U256::from(value), [(scope, subject, window)])
}

fn sample() -> Velocity {
    let mut v = Velocity::default();
    add(&mut v, Scope::Rule, "r", 90, 1_000, 5);
    add(&mut v, Scope::Key, "ké", HOUR, 1_000, 0);
    add(&mut v, Scope::Key, "ké", HOUR, 1_100, 7);
    add(&mut v, Scope::Key, "ké", 60, 1_100, 1);
    v.record(
        1_200,
        U256::MAX,
        [(Scope::Principal, "p", HOUR), (Scope::Key, "k", HOUR)],
    );
    v
}

/// An independent encoder for hand-made (often invalid) input: (scope byte, subject,
/// window, [(index, count, value)]).
type RawCounter<'a> = (u8, &'a [u8], u64, Vec<(u64, u64, u64)>);

fn encode(last_sweep: u64, counters: &[RawCounter<'_>]) -> Vec<u8> {
    let mut out = b"SRVC\x01".to_vec();
    out.extend_from_slice(&last_sweep.to_be_bytes());
    out.extend_from_slice(&(counters.len() as u32).to_be_bytes());
    for (scope, subject, window, buckets) in counters {
        out.push(*scope);
        out.push(subject.len() as u8);
        out.extend_from_slice(subject);
        out.extend_from_slice(&window.to_be_bytes());
        out.push(buckets.len() as u8);
        for (index, count, value) in buckets {
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&U256::from(*value).to_be_bytes::<32>());
        }
    }
    out
}

fn refusal(bytes: &[u8]) -> &'static str {
    match Velocity::from_bytes(bytes) {
        Err(PolicyError::VelocityMalformed(why)) => why,
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

#[test]
fn encoding_round_trips_and_is_deterministic() {
    let v = sample();
    let bytes = v.to_bytes();
    assert_eq!(Velocity::from_bytes(&bytes).unwrap(), v);
    assert_eq!(Velocity::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    let empty = Velocity::default();
    assert_eq!(Velocity::from_bytes(&empty.to_bytes()).unwrap(), empty);
    // The same history gives the same bytes, whatever order counters were created in.
    assert_eq!(sample().to_bytes(), bytes);
    let mut a = Velocity::default();
    let mut b = Velocity::default();
    let counters = [
        (Scope::Rule, "z", HOUR),
        (Scope::Key, "a", 60),
        (Scope::Key, "a", 30),
    ];
    a.record(500, U256::from(3), counters);
    b.record(500, U256::from(3), counters.into_iter().rev());
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn encoding_is_the_documented_layout() {
    let mut v = Velocity::default();
    // Windows of 90 s have 2-second buckets: t = 1001 goes in bucket 500.
    add(&mut v, Scope::Principal, "p", 90, 1_001, 9);
    add(&mut v, Scope::Key, "k", 60, 1_001, 0);
    let expected = encode(
        1_001,
        &[
            (0, b"k", 60, vec![(1_001, 1, 0)]),
            (1, b"p", 90, vec![(500, 1, 9)]),
        ],
    );
    assert_eq!(v.to_bytes(), expected);
}

#[test]
fn every_truncation_and_a_trailing_byte_are_refused() {
    let bytes = sample().to_bytes();
    for n in 0..bytes.len() {
        assert!(
            Velocity::from_bytes(&bytes[..n]).is_err(),
            "prefix {n} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(refusal(&longer), "trailing bytes");
}

#[test]
fn lying_counts_are_refused_before_allocation() {
    let one = encode(0, &[(0, b"k", 60, vec![(1, 1, 1)])]);
    let mut bytes = one.clone();
    bytes[13..17].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(refusal(&bytes), "counter count exceeds the data");
    bytes[13..17].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(refusal(&bytes), "counter count exceeds the data");
    // The bucket count byte follows scope, length, "k" and the window.
    let at = 17 + 1 + 1 + 1 + 8;
    let mut bytes = one.clone();
    bytes[at] = 61;
    assert_eq!(refusal(&bytes), "bucket count exceeds the data");
    bytes[at] = 62;
    assert_eq!(refusal(&bytes), "too many buckets");
    bytes[at] = 255;
    assert_eq!(refusal(&bytes), "too many buckets");
}

#[test]
fn malformed_content_is_refused() {
    let bucket = || vec![(1, 1, 1)];
    let ok = encode(0, &[(0, b"a", 60, bucket()), (0, b"b", 60, bucket())]);
    assert!(Velocity::from_bytes(&ok).is_ok());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            encode(0, &[(0, b"b", 60, bucket()), (0, b"a", 60, bucket())]),
            "counters out of order",
        ),
        (
            encode(0, &[(1, b"a", 60, bucket()), (0, b"b", 60, bucket())]),
            "counters out of order",
        ),
        (
            encode(0, &[(0, b"a", 90, bucket()), (0, b"a", 60, bucket())]),
            "counters out of order",
        ),
        (
            encode(0, &[(0, b"a", 60, bucket()), (0, b"a", 60, bucket())]),
            "counters out of order",
        ),
        (
            encode(0, &[(0, b"a", 60, vec![(2, 1, 0), (1, 1, 0)])]),
            "buckets out of order",
        ),
        (
            encode(0, &[(0, b"a", 60, vec![(1, 1, 0), (1, 1, 0)])]),
            "buckets out of order",
        ),
        (
            encode(0, &[(0, b"a", 60, vec![(1, 0, 0)])]),
            "bucket with a zero count",
        ),
        (
            encode(0, &[(0, b"a", 60, vec![(1, 0, 5)])]),
            "bucket with a zero count",
        ),
        (
            // The second counter's buckets make the data long enough for two counters.
            encode(
                0,
                &[
                    (0, b"a", 60, vec![]),
                    (0, b"b", 60, (1..5).map(|i| (i, 1, 0)).collect()),
                ],
            ),
            "counter without buckets",
        ),
        (encode(0, &[(3, b"a", 60, bucket())]), "unknown scope"),
        (encode(0, &[(0, b"a", 0, bucket())]), "window out of range"),
        (
            encode(0, &[(0, b"a", MAX_WINDOW_SECS + 1, bucket())]),
            "window out of range",
        ),
        // Two buckets: one would be less data than the smallest valid counter.
        (
            encode(0, &[(0, b"", 60, vec![(1, 1, 0), (2, 1, 0)])]),
            "empty subject",
        ),
        (
            encode(0, &[(0, b"\xff", 60, bucket())]),
            "subject is not UTF-8",
        ),
    ];
    for (bytes, why) in cases {
        assert_eq!(refusal(&bytes), why);
    }
    let mut bytes = ok.clone();
    bytes[0] = b'X';
    assert_eq!(refusal(&bytes), "bad magic");
    let mut bytes = ok;
    bytes[4] = 2;
    assert_eq!(refusal(&bytes), "unknown format version");
    // The largest counter the format allows is accepted.
    let full: Vec<_> = (0..61).map(|i| (i, 1, 0)).collect();
    let subject = [b'x'; 255];
    let bytes = encode(0, &[(2, &subject, MAX_WINDOW_SECS, full)]);
    assert_eq!(Velocity::from_bytes(&bytes).unwrap().to_bytes(), bytes);
}

#[test]
fn bucket_width_at_the_boundaries() {
    for (window, w) in [
        (1, 1),
        (30, 1),
        (60, 1),
        (61, 2),
        (90, 2),
        (120, 2),
        (121, 3),
        (HOUR, 60),
        (HOUR + 1, 61),
        (86_400, 1_440),
        (MAX_WINDOW_SECS, 44_640),
    ] {
        assert_eq!(width(window), w, "window {window}");
    }
    assert_eq!(width(0), 1);
}

#[test]
fn a_window_counts_the_whole_bucket_holding_its_start() {
    let totals = |v: &Velocity, window, now| v.totals(Scope::Key, "k", window, now);
    // Width 1: a signature at t counts through t + W, one second past the exact window.
    let mut v = Velocity::default();
    add(&mut v, Scope::Key, "k", 60, 1_000, 4);
    assert_eq!(totals(&v, 60, 1_000), (1, U256::from(4)));
    assert_eq!(totals(&v, 60, 1_060), (1, U256::from(4)));
    assert_eq!(totals(&v, 60, 1_061), (0, U256::ZERO));
    // W = 90 s (not a multiple of 60): 2-second buckets; bucket 500 holds t = 1000 and
    // t = 1001 and counts until (now - 90) / 2 passes it, i.e. through now = 1091.
    let mut v = Velocity::default();
    add(&mut v, Scope::Key, "k", 90, 1_000, 1);
    add(&mut v, Scope::Key, "k", 90, 1_001, 2);
    assert_eq!(v.buckets(), 1);
    assert_eq!(totals(&v, 90, 1_091), (2, U256::from(3)));
    assert_eq!(totals(&v, 90, 1_092), (0, U256::ZERO));
    // Another window is another counter.
    assert_eq!(totals(&v, 60, 1_001), (0, U256::ZERO));
    assert_eq!(v.totals(Scope::Principal, "k", 90, 1_001), (0, U256::ZERO));
    // Before the first window has passed since the epoch, everything counts.
    let mut v = Velocity::default();
    add(&mut v, Scope::Key, "k", HOUR, 5, 1);
    assert_eq!(totals(&v, HOUR, 10), (1, U256::from(1)));
    // Totals saturate rather than wrap.
    add(&mut v, Scope::Key, "k", HOUR, 6, 0);
    v.record(7, U256::MAX, [(Scope::Key, "k", HOUR)]);
    assert_eq!(totals(&v, HOUR, 10), (3, U256::MAX));
}

#[test]
fn a_future_bucket_still_counts() {
    let mut v = Velocity::default();
    add(&mut v, Scope::Key, "k", 60, 10_000, 3);
    // The clock went back: the signature from "the future" counts.
    assert_eq!(v.totals(Scope::Key, "k", 60, 5_000), (1, U256::from(3)));
    // And a signature now joins the newest bucket, counted at least as long.
    add(&mut v, Scope::Key, "k", 60, 5_000, 1);
    assert_eq!(v.buckets(), 1);
    assert_eq!(v.totals(Scope::Key, "k", 60, 10_060), (2, U256::from(4)));
    assert_eq!(v.totals(Scope::Key, "k", 60, 10_061), (0, U256::ZERO));
}

#[test]
fn pruning_removes_exactly_what_no_window_can_count() {
    let mut v = Velocity::default();
    for t in (0..400).step_by(7) {
        add(&mut v, Scope::Key, "a", 60, t, 1);
        add(&mut v, Scope::Key, "a", 90, t, 1);
        add(&mut v, Scope::Principal, "b", 30, t, 1);
    }
    add(&mut v, Scope::Rule, "old", 60, 100, 1);
    let unpruned = v.clone();
    let now = 400;
    v.prune(now);
    // Counted from now on: the 60 s counter from t = 340 (7-second steps: 343 is the
    // first), the 90 s one (2-second buckets) from bucket 155 (t = 315, bucket 157, is the
    // first), the 30 s one from t = 370 (371); "old" is gone.
    assert_eq!(v.counters(), 3);
    let first = |key: &CounterKey| v.counters[key].first().unwrap().index;
    let key = |scope, subject: &str, window| CounterKey {
        scope,
        subject: subject.into(),
        window,
    };
    assert_eq!(first(&key(Scope::Key, "a", 60)), 343);
    assert_eq!(first(&key(Scope::Key, "a", 90)), 157);
    assert_eq!(first(&key(Scope::Principal, "b", 30)), 371);
    // What was dropped no window ending now or later counts; what was kept, it does.
    for (key, buckets) in &unpruned.counters {
        let kept = v.counters.get(key).map_or(0, Vec::len);
        let live = buckets
            .iter()
            .filter(|b| b.index >= first_counted(key.window, now))
            .count();
        assert_eq!(kept, live, "{key:?}");
        for later in now..now + 200 {
            assert_eq!(
                v.totals(key.scope, &key.subject, key.window, later),
                unpruned.totals(key.scope, &key.subject, key.window, later),
            );
        }
    }
    v.prune(10_000);
    assert_eq!((v.counters(), v.buckets()), (0, 0));
    assert_eq!(
        v,
        Velocity {
            last_sweep: 10_000,
            ..Velocity::default()
        }
    );
}

#[test]
fn recording_prunes_what_it_touches_and_sweeps_once_a_minute() {
    let mut v = Velocity::default();
    add(&mut v, Scope::Key, "a", 10, 100, 1);
    add(&mut v, Scope::Key, "b", 10, 100, 1);
    // Past "a"'s window but within a minute of the last sweep (at 100): kept for now.
    add(&mut v, Scope::Key, "b", 10, 130, 1);
    assert_eq!((v.counters(), v.buckets()), (2, 2));
    // The touched counter was pruned: "b" holds only t = 130.
    assert_eq!(v.totals(Scope::Key, "b", 10, 130), (1, U256::from(1)));
    add(&mut v, Scope::Key, "b", 10, 160, 1);
    assert_eq!((v.counters(), v.buckets()), (1, 1));
}

#[test]
fn unencodable_counters_are_skipped() {
    let mut v = Velocity::default();
    let long = "x".repeat(MAX_SUBJECT_LEN + 1);
    assert!(!add(&mut v, Scope::Key, "", 60, 1, 1));
    assert!(!add(&mut v, Scope::Key, &long, 60, 1, 1));
    assert!(!add(&mut v, Scope::Key, "k", 0, 1, 1));
    assert!(!add(&mut v, Scope::Key, "k", MAX_WINDOW_SECS + 1, 1, 1));
    assert_eq!(v, Velocity::default());
    assert!(add(&mut v, Scope::Key, &long[1..], 60, 1, 1));
}

#[test]
fn buckets_stay_bounded_whatever_the_clock_does() {
    let mut v = Velocity::default();
    // A small deterministic generator: mostly forward, sometimes back a little or a lot.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut now = 1_000_000u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        now = match state % 10 {
            0 => now.saturating_sub(state % 5_000),
            1 => now + state % 10_000,
            _ => now + state % 90,
        };
        for window in [30, 90, HOUR, HOUR + 1] {
            add(&mut v, Scope::Key, "k", window, now, 1);
        }
        for buckets in v.counters.values() {
            assert!(buckets.len() <= BUCKETS_PER_WINDOW + 1);
        }
    }
    assert_eq!(Velocity::from_bytes(&v.to_bytes()).unwrap(), v);
}
