//! A tiny Redis stand-in for the tests: SET answers `+OK`, GET a bulk string or `$-1`, and a
//! few modes misbehave on purpose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tandem_resp::{Frame, Limits, Protocol, encode, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SET stores and answers `+OK`; GET answers the stored value or `$-1`.
    Normal,
    /// Like `Normal`, but every GET answers `-ERR`.
    ErrorOnGet,
    /// Reads everything, never answers.
    Hang,
    /// Answers every read with bytes that are not RESP.
    Garbage,
}

/// What the server saw, across all connections.
#[derive(Debug, Default)]
pub struct Seen {
    /// Commands parsed.
    pub commands: AtomicU64,
    /// GET commands parsed.
    pub gets: AtomicU64,
    /// GETs of a key never SET.
    pub get_misses: AtomicU64,
    /// Most commands that arrived in one read on one connection.
    pub largest_batch: AtomicU64,
}

impl Seen {
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn get_misses(&self) -> u64 {
        self.get_misses.load(Ordering::SeqCst)
    }
    pub fn largest_batch(&self) -> u64 {
        self.largest_batch.load(Ordering::SeqCst)
    }
}

/// A running fake server; it lives as long as the test's runtime.
pub struct FakeServer {
    pub addr: String,
    pub seen: Arc<Seen>,
}

type Store = Arc<Mutex<HashMap<Bytes, Bytes>>>;

pub async fn start(mode: Mode) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let store = Store::default();
    let server_seen = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            // As Redis does; without it, Nagle holds small replies back ~40 ms.
            socket.set_nodelay(true).unwrap();
            let (seen, store) = (Arc::clone(&server_seen), Arc::clone(&store));
            tokio::spawn(serve(socket, mode, seen, store));
        }
    });
    FakeServer { addr, seen }
}

async fn serve(mut socket: TcpStream, mode: Mode, seen: Arc<Seen>, store: Store) {
    let limits = Limits::default();
    let (mut input, mut output) = (BytesMut::new(), BytesMut::new());
    loop {
        match socket.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut batch = 0;
        while let Ok(Some(args)) = parse_request(&mut input, &limits) {
            batch += 1;
            let reply = answer(&args, mode, &seen, &store);
            encode(&reply, Protocol::Resp2, &mut output);
        }
        seen.commands.fetch_add(batch, Ordering::SeqCst);
        seen.largest_batch.fetch_max(batch, Ordering::SeqCst);
        match mode {
            Mode::Hang => output.clear(),
            Mode::Garbage => {
                output.clear();
                output.extend_from_slice(b"?not resp\r\n");
            }
            Mode::Normal | Mode::ErrorOnGet => {}
        }
        if socket.write_all(&output).await.is_err() {
            return;
        }
        output.clear();
    }
}

fn answer(args: &[Bytes], mode: Mode, seen: &Seen, store: &Store) -> Frame {
    let command = args[0].to_ascii_uppercase();
    match (command.as_slice(), args.len()) {
        (b"SET", 3) => {
            store
                .lock()
                .unwrap()
                .insert(args[1].clone(), args[2].clone());
            Frame::Simple("OK".into())
        }
        (b"GET", 2) => {
            seen.gets.fetch_add(1, Ordering::SeqCst);
            if mode == Mode::ErrorOnGet {
                return Frame::Error("ERR reads are switched off".into());
            }
            match store.lock().unwrap().get(&args[1]) {
                Some(value) => Frame::Bulk(value.clone()),
                None => {
                    seen.get_misses.fetch_add(1, Ordering::SeqCst);
                    Frame::Null
                }
            }
        }
        _ => Frame::Error("ERR unknown command".into()),
    }
}
