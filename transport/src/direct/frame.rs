//! The direct link's wire protocol: frames, with no I/O (the connection reads and writes them).
//!
//! Every frame is `length: u32 BE` (of what follows) `| kind: u8 | payload`:
//!
//! | kind | frame | payload |
//! | --- | --- | --- |
//! | 1 | `Hello` (node → hub, first frame) | `version: u8`, `last_applied: u64` |
//! | 2 | `Message` (both ways) | `seq: u64`, `flags: u8` (bit 0: redelivered), `id_len: u16`, id, `key_len: u16` (`0xFFFF` = no key), key, body (the rest) |
//! | 3 | `Ack` (both ways) | `seq: u64` |
//! | 4 | `Heartbeat` (both ways, when idle) | none |
//! | 5 | `Reject` (node → hub) | `seq: u64`, reason (UTF-8, the rest) |
//!
//! `seq` of a node → hub message is the node's own counter (the hub acks it back); `seq` of a
//! hub → node message is the node's delivery sequence in the hub's queue.
//!
//! `Reject` settles hub → node message `seq` as refused for good: the hub removes it from the
//! node's queue (it is never redelivered) and records it, with the reason, in its dead letters
//! under the node's queue (`cats.node.XX`), where an operator can replay it. It is a frame
//! kind added without a new protocol version: a hub of this version accepts it from every node
//! (a version-1 node simply never sends it), and only a hub older than it would refuse it, so
//! the hub is upgraded before the nodes (`docs/decisions.md`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version a node announces in `Hello`.
pub const PROTOCOL_VERSION: u8 = 1;

const KIND_HELLO: u8 = 1;
const KIND_MESSAGE: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;
const KIND_REJECT: u8 = 5;
const NO_KEY: u16 = u16::MAX;
const FLAG_REDELIVERED: u8 = 1;

/// One frame of the direct link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The node's first frame: which protocol it speaks and the last hub sequence it applied.
    Hello {
        /// Protocol version.
        version: u8,
        /// The highest sequence up to which the node has applied everything.
        last_applied: u64,
    },
    /// A message.
    Message {
        /// Sequence number (see the module documentation).
        seq: u64,
        /// The sender put it on the wire before.
        redelivered: bool,
        /// The message id.
        message_id: String,
        /// The partition key.
        partition_key: Option<String>,
        /// The envelope bytes.
        body: Bytes,
    },
    /// The receiver took responsibility for message `seq`.
    Ack {
        /// The sequence acknowledged.
        seq: u64,
    },
    /// Keeps an idle link alive.
    Heartbeat,
    /// The node refused hub message `seq` for good (node → hub only).
    Reject {
        /// The sequence refused.
        seq: u64,
        /// Why, in words an operator reads (`refdata-gap: office … is not …`).
        reason: String,
    },
}

/// The bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds the maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared size.
        size: usize,
        /// Maximum.
        max: usize,
    },
    /// Unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The payload is shorter than its fields, or has bytes left over.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    /// A text field is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A field is too long to encode.
    #[error("{0} is too long to encode")]
    FieldTooLong(&'static str),
}

impl Frame {
    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        let start = out.len();
        out.put_u32(0); // length, patched below
        match self {
            Frame::Hello {
                version,
                last_applied,
            } => {
                out.put_u8(KIND_HELLO);
                out.put_u8(*version);
                out.put_u64(*last_applied);
            }
            Frame::Message {
                seq,
                redelivered,
                message_id,
                partition_key,
                body,
            } => {
                out.put_u8(KIND_MESSAGE);
                out.put_u64(*seq);
                out.put_u8(if *redelivered { FLAG_REDELIVERED } else { 0 });
                let id_len = u16::try_from(message_id.len())
                    .ok()
                    .filter(|n| *n != NO_KEY)
                    .ok_or(FrameError::FieldTooLong("message id"))?;
                out.put_u16(id_len);
                out.put_slice(message_id.as_bytes());
                match partition_key {
                    None => out.put_u16(NO_KEY),
                    Some(key) => {
                        let key_len = u16::try_from(key.len())
                            .ok()
                            .filter(|n| *n != NO_KEY)
                            .ok_or(FrameError::FieldTooLong("partition key"))?;
                        out.put_u16(key_len);
                        out.put_slice(key.as_bytes());
                    }
                }
                out.put_slice(body);
            }
            Frame::Ack { seq } => {
                out.put_u8(KIND_ACK);
                out.put_u64(*seq);
            }
            Frame::Heartbeat => out.put_u8(KIND_HEARTBEAT),
            Frame::Reject { seq, reason } => {
                out.put_u8(KIND_REJECT);
                out.put_u64(*seq);
                out.put_slice(reason.as_bytes());
            }
        }
        let len = u32::try_from(out.len() - start - 4).map_err(|_| FrameError::TooLarge {
            size: out.len() - start - 4,
            max: u32::MAX as usize,
        })?;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Takes one complete frame off the front of `buf`: `Ok(None)` when more bytes are
    /// needed. The declared length is checked against `max` before anything is buffered.
    pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
        let Some(len_bytes) = buf.get(..4) else {
            return Ok(None);
        };
        let mut len_arr = [0u8; 4];
        len_arr.copy_from_slice(len_bytes);
        let len = u32::from_be_bytes(len_arr) as usize;
        if len > max {
            return Err(FrameError::TooLarge { size: len, max });
        }
        if len == 0 {
            return Err(FrameError::Malformed("empty"));
        }
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        let mut payload = buf.split_to(len).freeze();
        let kind = payload.get_u8();
        let frame = match kind {
            KIND_HELLO => {
                need(&payload, 9, "hello")?;
                let version = payload.get_u8();
                let last_applied = payload.get_u64();
                Frame::Hello {
                    version,
                    last_applied,
                }
            }
            KIND_MESSAGE => {
                need(&payload, 11, "message")?;
                let seq = payload.get_u64();
                let flags = payload.get_u8();
                let id_len = payload.get_u16() as usize;
                need(&payload, id_len + 2, "message")?;
                let message_id = text(payload.split_to(id_len), "message id")?;
                let key_len = payload.get_u16();
                let partition_key = if key_len == NO_KEY {
                    None
                } else {
                    need(&payload, key_len as usize, "message")?;
                    Some(text(payload.split_to(key_len as usize), "partition key")?)
                };
                Frame::Message {
                    seq,
                    redelivered: flags & FLAG_REDELIVERED != 0,
                    message_id,
                    partition_key,
                    body: payload.split_off(0),
                }
            }
            KIND_ACK => {
                need(&payload, 8, "ack")?;
                Frame::Ack {
                    seq: payload.get_u64(),
                }
            }
            KIND_HEARTBEAT => Frame::Heartbeat,
            KIND_REJECT => {
                need(&payload, 8, "reject")?;
                let seq = payload.get_u64();
                let reason = text(payload.split_off(0), "reject reason")?;
                Frame::Reject { seq, reason }
            }
            other => return Err(FrameError::UnknownKind(other)),
        };
        if payload.has_remaining() {
            return Err(FrameError::Malformed("trailing bytes in"));
        }
        Ok(Some(frame))
    }
}

fn need(payload: &Bytes, n: usize, what: &'static str) -> Result<(), FrameError> {
    if payload.remaining() < n {
        Err(FrameError::Malformed(what))
    } else {
        Ok(())
    }
}

fn text(bytes: Bytes, what: &'static str) -> Result<String, FrameError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::NotUtf8(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encodable");
        // Byte by byte: incomplete until the last byte.
        let all = buf.clone();
        let mut partial = BytesMut::new();
        for (i, b) in all.iter().enumerate() {
            partial.put_u8(*b);
            let got = Frame::decode(&mut partial, 1 << 20).expect("decodable");
            if i + 1 < all.len() {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some(frame.clone()));
            }
        }
        assert!(partial.is_empty());
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame::Hello {
            version: PROTOCOL_VERSION,
            last_applied: 42,
        });
        round_trip(Frame::Message {
            seq: 7,
            redelivered: true,
            message_id: "KZ-0001".into(),
            partition_key: Some("26KZ000101T0000015".into()),
            body: Bytes::from_static(b"<envelope/>"),
        });
        round_trip(Frame::Message {
            seq: 8,
            redelivered: false,
            message_id: String::new(),
            partition_key: None,
            body: Bytes::new(),
        });
        round_trip(Frame::Ack { seq: u64::MAX });
        round_trip(Frame::Heartbeat);
        round_trip(Frame::Reject {
            seq: 9,
            reason: "refdata-gap: office AZ000101 is not in this node's reference data (version 1)"
                .into(),
        });
        round_trip(Frame::Reject {
            seq: 0,
            reason: String::new(),
        });
    }

    #[test]
    fn reject_frame_layout() {
        let mut buf = BytesMut::new();
        Frame::Reject {
            seq: 2,
            reason: "no".into(),
        }
        .encode(&mut buf)
        .expect("encodable");
        assert_eq!(
            &buf[..],
            &[0, 0, 0, 11, KIND_REJECT, 0, 0, 0, 0, 0, 0, 0, 2, b'n', b'o']
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, KIND_ACK][..]);
        assert_eq!(
            Frame::decode(&mut buf, 1024),
            Err(FrameError::TooLarge {
                size: 0x7fff_ffff,
                max: 1024
            })
        );
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            &[0, 0, 0, 0],
            &[0, 0, 0, 1, 99],
            &[0, 0, 0, 1, KIND_HELLO],
            &[0, 0, 0, 2, KIND_ACK, 1],
            &[
                0,
                0,
                0,
                12,
                KIND_MESSAGE,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0xff,
                0xfe,
            ],
            &[0, 0, 0, 2, KIND_HEARTBEAT, 0],
            // A reject shorter than its sequence, and one whose reason is not UTF-8.
            &[0, 0, 0, 5, KIND_REJECT, 0, 0, 0, 1],
            &[0, 0, 0, 10, KIND_REJECT, 0, 0, 0, 0, 0, 0, 0, 1, 0xff],
            &[
                0,
                0,
                0,
                16,
                KIND_MESSAGE,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                2,
                0xff,
                0xfe,
                0xff,
                0xff,
            ],
        ];
        for case in cases {
            let mut buf = BytesMut::from(*case);
            assert!(Frame::decode(&mut buf, 1024).is_err(), "{case:?} accepted");
        }
    }
}
