//! Keyspace benchmark: SET, GET, memory per key, clone + first write, state-transfer
//! read (`chunk_after`) and load (`insert_entry`), for 100k and 1M keys.
//!
//! Run with `cargo run --release -p tandem-kv --example keyspace`. Memory is the growth of
//! the process's resident set (`/proc/self/statm`), which is what the memory target is
//! about; a counting allocator would need `unsafe`, which the workspace forbids.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_kv::{Command, ExecContext, Reply, Store};

const VALUE_LEN: usize = 100;
/// Commands are built in batches (untimed) and dropped after running, like the server
/// does with a deserialized request, so the store keeps only what it chose to keep.
const BATCH: usize = 10_000;
/// The state transfer's chunk limits (`transfer_chunk_bytes` default, entries cap).
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_ENTRIES: usize = 65_536;

fn key(i: usize) -> Bytes {
    Bytes::copy_from_slice(format!("key:{i:07}").as_bytes())
}

fn value(i: usize, round: usize) -> Bytes {
    let mut text = format!("value-{round}-{i}-").into_bytes();
    text.resize(VALUE_LEN, b'x');
    Bytes::copy_from_slice(&text)
}

fn set(i: usize, round: usize) -> Command {
    Command::Set {
        key: key(i),
        value: value(i, round),
        condition: None,
        get: false,
        expiry: None,
    }
}

/// A fixed pseudo-random permutation of 0..n (a deterministic shuffle).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Runs `make(i)` for every i in `order`, timing only the execution; returns ops/s.
fn run(store: &mut Store, order: &[usize], make: impl Fn(usize) -> Command) -> f64 {
    let ctx = ExecContext {
        now_ms: 1_000,
        random: 0,
        ..ExecContext::default()
    };
    let mut busy = Duration::ZERO;
    for batch in order.chunks(BATCH) {
        let commands: Vec<Command> = batch.iter().map(|&i| make(i)).collect();
        let start = Instant::now();
        for command in &commands {
            let reply = store.execute(command, &ctx);
            debug_assert!(!matches!(reply, Reply::Error(_)));
            black_box(reply);
        }
        busy += start.elapsed();
    }
    order.len() as f64 / busy.as_secs_f64()
}

fn mops(rate: f64) -> String {
    format!("{:.2} M/s", rate / 1e6)
}

fn bench(n: usize) {
    println!("== N = {n} keys, {VALUE_LEN}-byte values");
    let sequential: Vec<usize> = (0..n).collect();
    let random = shuffled(n);
    let rss_before = rss();
    let mut store = Store::new();

    let rate = run(&mut store, &sequential, |i| set(i, 0));
    let rss_set = rss();
    println!("SET (new keys)        {}", mops(rate));
    println!(
        "memory after SET      {:.1} MB, {:.0} bytes/key",
        (rss_set - rss_before) as f64 / 1e6,
        (rss_set - rss_before) as f64 / n as f64
    );
    let rate = run(&mut store, &random, |i| set(i, 1));
    println!("SET (overwrite)       {}", mops(rate));
    let rate = run(&mut store, &random, |i| Command::Get { key: key(i) });
    println!("GET (random order)    {}", mops(rate));
    let rss_get = rss();
    println!(
        "memory after GETs     {:.1} MB, {:.0} bytes/key",
        (rss_get - rss_before) as f64 / 1e6,
        (rss_get - rss_before) as f64 / n as f64
    );
    let rate = run(&mut store, &random, |i| Command::Get { key: key(i) });
    println!("GET (again)           {}", mops(rate));

    // Snapshot for a transfer, then the live store keeps writing (P6).
    let ctx = ExecContext::default();
    let start = Instant::now();
    let snapshot = store.clone();
    let cloned = start.elapsed();
    let start = Instant::now();
    black_box(store.execute(&set(n / 2, 2), &ctx));
    let first_write = start.elapsed();
    let start = Instant::now();
    for i in 0..1000 {
        black_box(store.execute(&set((i * 7919) % n, 3), &ctx));
    }
    let next_writes = start.elapsed();
    println!(
        "clone                 {:.1} us; first write {:.1} us; next 1000 writes {:.1} us/op",
        cloned.as_secs_f64() * 1e6,
        first_write.as_secs_f64() * 1e6,
        next_writes.as_secs_f64() * 1e6 / 1000.0
    );

    // Read the snapshot out in chunks while the live store goes on changing.
    let start = Instant::now();
    let (mut chunks, mut after, mut entries, mut bytes) = (Vec::new(), None, 0usize, 0usize);
    loop {
        let chunk = snapshot.chunk_after(after.as_ref(), CHUNK_BYTES, CHUNK_ENTRIES);
        entries += chunk.entries.len();
        bytes += chunk
            .entries
            .iter()
            .map(|(k, e)| match &e.value {
                tandem_kv::Value::Str(s) => k.len() + s.len(),
                _ => k.len(),
            })
            .sum::<usize>();
        after = chunk.last_key.clone();
        let done = chunk.done;
        chunks.push(chunk);
        if done {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(entries, n);
    println!(
        "chunk_after scan      {} entries, {:.0} MB/s ({} chunks)",
        mops(entries as f64 / secs),
        bytes as f64 / 1e6 / secs,
        chunks.len()
    );
    drop(snapshot);

    let start = Instant::now();
    let mut copy = Store::new();
    for chunk in chunks {
        for (key, entry) in chunk.entries {
            copy.insert_entry(key, entry);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(copy.len(), n);
    println!("insert_entry          {} entries", mops(n as f64 / secs));
    let start = Instant::now();
    drop(copy);
    drop(store);
    println!(
        "drop both             {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "size_of::<Entry>() = {} bytes",
        std::mem::size_of::<tandem_kv::Entry>()
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if let [n] = sizes[..] {
        bench(n);
        return;
    }
    // One process per size, so the memory figures do not reuse an earlier run's heap.
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    let me = std::env::current_exe().expect("own path");
    for n in sizes {
        let status = std::process::Command::new(&me)
            .arg(n.to_string())
            .status()
            .expect("runs");
        assert!(status.success());
    }
}
