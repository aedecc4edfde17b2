//! Reading and writing [`Frame`]s on a byte stream (the TLS session), with timeouts.
//!
//! A connection is split in two: a [`FrameReader`] owned by the task that reads, and a writer
//! task ([`run_writer`]) fed through a channel, which batches frames into as few TLS records as
//! it can and sends a heartbeat when the link has been idle.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::Frame;
use crate::contract::TransportError;

/// Reads frames from one half of a connection.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    stream: R,
    buffer: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(stream: R, max_frame: usize) -> Self {
        FrameReader {
            stream,
            buffer: BytesMut::with_capacity(64 * 1024),
            max_frame,
        }
    }

    /// The next frame; `Ok(None)` when the peer closed cleanly between frames. Fails with
    /// [`TransportError::Timeout`] when nothing (not even a heartbeat) arrives within
    /// `idle_timeout`.
    pub(crate) async fn read(
        &mut self,
        idle_timeout: Duration,
    ) -> Result<Option<Frame>, TransportError> {
        loop {
            if let Some(frame) =
                Frame::decode(&mut self.buffer, self.max_frame).map_err(|e| match e {
                    super::frame::FrameError::TooLarge { size, max } => {
                        TransportError::TooLarge { size, max }
                    }
                    other => TransportError::Protocol(other.to_string()),
                })?
            {
                return Ok(Some(frame));
            }
            let n = tokio::time::timeout(idle_timeout, self.stream.read_buf(&mut self.buffer))
                .await
                .map_err(|_| TransportError::Timeout("waiting for the peer"))??;
            if n == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(TransportError::Disconnected(
                        "connection closed in the middle of a frame".into(),
                    ))
                };
            }
        }
    }
}

/// Writes the frames it receives on `frames` to `stream` until the channel closes (then shuts
/// the stream down cleanly) or a write fails or times out. Sends a heartbeat after
/// `heartbeat` of silence.
pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
    mut stream: W,
    mut frames: mpsc::UnboundedReceiver<Frame>,
    heartbeat: Duration,
    write_timeout: Duration,
) -> Result<(), TransportError> {
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = match tokio::time::timeout(heartbeat, frames.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => Frame::Heartbeat,
        };
        encode(&first, &mut buffer)?;
        // Batch whatever else is already waiting, up to ~256 KB per write.
        while buffer.len() < 256 * 1024 {
            match frames.try_recv() {
                Ok(frame) => encode(&frame, &mut buffer)?,
                Err(_) => break,
            }
        }
        tokio::time::timeout(write_timeout, async {
            stream.write_all(&buffer).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| TransportError::Timeout("writing to the peer"))??;
        buffer.clear();
    }
    let _ = tokio::time::timeout(write_timeout, stream.shutdown()).await;
    Ok(())
}

fn encode(frame: &Frame, buffer: &mut BytesMut) -> Result<(), TransportError> {
    frame
        .encode(buffer)
        .map_err(|e| TransportError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_writer_sends_heartbeats_and_a_silent_peer_times_out() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(run_writer(
            ours,
            rx,
            Duration::from_secs(5),
            Duration::from_secs(10),
        ));
        let (their_read, _their_write) = tokio::io::split(theirs);
        let mut reader = FrameReader::new(their_read, 1024);
        // Nothing sent for 5 s (paused clock): a heartbeat arrives.
        let frame = reader.read(Duration::from_secs(6)).await.expect("read");
        assert_eq!(frame, Some(Frame::Heartbeat));
        tx.send(Frame::Ack { seq: 9 }).expect("send");
        let frame = reader.read(Duration::from_secs(1)).await.expect("read");
        assert_eq!(frame, Some(Frame::Ack { seq: 9 }));
        // A reader that hears nothing for its idle timeout gives up.
        drop(tx);
        writer.await.expect("writer task").expect("writer");
        let (_a, b) = tokio::io::duplex(64);
        let (b_read, _b_write) = tokio::io::split(b);
        let mut silent = FrameReader::new(b_read, 1024);
        assert!(matches!(
            silent.read(Duration::from_secs(15)).await,
            Err(TransportError::Timeout(_))
        ));
    }
}
