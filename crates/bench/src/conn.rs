//! One connection to the server: write a batch, read replies, every wait bounded.

use bytes::BytesMut;
use tandem_resp::{Frame, Limits, parse_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Read-buffer space reserved before each socket read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a connection stopped. After any of these the connection is unusable: replies may be
/// missing or arrive late, so they could no longer be matched to their requests.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not a valid reply, or a reply over the size limit.
    #[error("protocol error from server: {0}")]
    Protocol(String),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The time limit passed first.
    #[error("timed out waiting for the server")]
    TimedOut,
}

/// A client connection with its buffers.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    input: BytesMut,
    /// Commands to send; filled by the caller, emptied by [`Conn::flush`].
    pub(crate) output: BytesMut,
    limits: Limits,
}

impl Conn {
    /// Connects to `addr`, giving up at `until`.
    pub(crate) async fn connect(addr: &str, until: Instant) -> Result<Conn, ConnError> {
        let stream = timeout_at(until, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnError::TimedOut)??;
        // Latency is the point of the exercise: never let Nagle hold a batch back.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            input: BytesMut::with_capacity(READ_CHUNK_BYTES),
            output: BytesMut::new(),
            // 512 MiB bulk strings, as Redis; anything bigger is a protocol error.
            limits: Limits::default(),
        })
    }

    /// Writes out everything in `output`, giving up at `until`.
    pub(crate) async fn flush(&mut self, until: Instant) -> Result<(), ConnError> {
        timeout_at(until, self.stream.write_all(&self.output))
            .await
            .map_err(|_| ConnError::TimedOut)??;
        self.output.clear();
        Ok(())
    }

    /// The next reply, waiting for its bytes until `until`.
    pub(crate) async fn read_reply(&mut self, until: Instant) -> Result<Frame, ConnError> {
        loop {
            match parse_frame(&mut self.input, &self.limits) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(error) => return Err(ConnError::Protocol(error.to_string())),
            }
            self.input.reserve(READ_CHUNK_BYTES);
            let read = timeout_at(until, self.stream.read_buf(&mut self.input))
                .await
                .map_err(|_| ConnError::TimedOut)??;
            if read == 0 {
                return Err(ConnError::Closed);
            }
        }
    }
}
