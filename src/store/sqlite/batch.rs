//! The encoding of one group commit's events as a single row's blob.
//!
//! A batch is a run of records, each `channel_len: u16 | channel |
//! seq: u64 | received_at_ms: i64 | frame_len: u32 | frame`, integers little
//! endian. Readers find a frame by its byte range, kept in the in-memory
//! index, and read just those bytes; the rest of the record is what
//! rebuilding the index at start-up needs. [`Builder`] packs a batch and
//! writes it as one row of `batches`.

use rusqlite::{Connection, params};

use crate::store::StoreError;

/// Bytes of a record before its channel and between channel and frame.
const FIXED: usize = 2 + 8 + 8 + 4;

/// One record as read back: where its frame lies in the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub channel: &'a str,
    pub seq: u64,
    pub received_at_ms: i64,
    /// Byte offset of the frame in the blob.
    pub offset: u32,
    /// Byte length of the frame.
    pub len: u32,
}

/// Appends one record to `blob`; returns the frame's `(offset, len)`.
pub fn push(
    blob: &mut Vec<u8>,
    channel: &str,
    seq: u64,
    received_at_ms: i64,
    frame: &str,
) -> Result<(u32, u32), StoreError> {
    let channel_len = u16::try_from(channel.len())
        .map_err(|_| StoreError::Database(format!("channel id too long: {channel}")))?;
    let frame_len = u32::try_from(frame.len())
        .map_err(|_| StoreError::Database("event frame over 4 GiB".into()))?;
    blob.reserve(FIXED + channel.len() + frame.len());
    blob.extend_from_slice(&channel_len.to_le_bytes());
    blob.extend_from_slice(channel.as_bytes());
    blob.extend_from_slice(&seq.to_le_bytes());
    blob.extend_from_slice(&received_at_ms.to_le_bytes());
    blob.extend_from_slice(&frame_len.to_le_bytes());
    let offset =
        u32::try_from(blob.len()).map_err(|_| StoreError::Database("batch over 4 GiB".into()))?;
    blob.extend_from_slice(frame.as_bytes());
    Ok((offset, frame_len))
}

/// A batch being packed: its records and the span of their arrival times.
pub struct Builder {
    blob: Vec<u8>,
    events: usize,
    first_at: i64,
    last_at: i64,
}

impl Builder {
    /// An empty batch with room for `bytes` of records.
    pub fn with_capacity(bytes: usize) -> Self {
        Builder {
            blob: Vec::with_capacity(bytes),
            events: 0,
            first_at: i64::MAX,
            last_at: i64::MIN,
        }
    }

    /// Adds one event; returns its frame's `(offset, len)` in the blob.
    pub fn push(
        &mut self,
        channel: &str,
        seq: u64,
        received_at_ms: i64,
        frame: &str,
    ) -> Result<(u32, u32), StoreError> {
        let placed = push(&mut self.blob, channel, seq, received_at_ms, frame)?;
        self.events += 1;
        self.first_at = self.first_at.min(received_at_ms);
        self.last_at = self.last_at.max(received_at_ms);
        Ok(placed)
    }

    /// Events added so far.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Writes the batch as one new row of `batches`; returns its rowid.
    pub fn insert(self, conn: &Connection) -> Result<i64, StoreError> {
        conn.prepare_cached("INSERT INTO batches (first_at, last_at, events) VALUES (?1, ?2, ?3)")?
            .execute(params![self.first_at, self.last_at, self.blob])?;
        Ok(conn.last_insert_rowid())
    }
}

/// Bytes of a record before its frame, for a record of `channel`.
pub fn header_len(channel: &str) -> usize {
    FIXED + channel.len()
}

/// The frame of `record` (a record's bytes, header first) if the record is
/// `channel`'s event `seq`: a row id SQLite reused after a trim holds other
/// records, and this tells them apart.
pub fn frame_of<'a>(record: &'a [u8], channel: &str, seq: u64) -> Option<&'a [u8]> {
    let mut rest = Cursor {
        blob: record,
        at: 0,
    };
    let channel_len = u16::from_le_bytes(rest.array()?) as usize;
    let same =
        rest.take(channel_len)? == channel.as_bytes() && u64::from_le_bytes(rest.array()?) == seq;
    let _received_at: [u8; 8] = rest.array()?;
    let len = u32::from_le_bytes(rest.array()?) as usize;
    if !same {
        return None;
    }
    rest.take(len)
}

/// Every record of `blob`, in order; an error names the damaged row.
pub fn records(rowid: i64, blob: &[u8]) -> Result<Vec<Record<'_>>, StoreError> {
    let damaged = || StoreError::Database(format!("stored batch {rowid} is damaged"));
    let mut out = Vec::new();
    let mut rest = Cursor { blob, at: 0 };
    while rest.at < blob.len() {
        let channel_len = u16::from_le_bytes(rest.array().ok_or_else(damaged)?) as usize;
        let channel = rest.take(channel_len).ok_or_else(damaged)?;
        let channel = std::str::from_utf8(channel).map_err(|_| damaged())?;
        let seq = u64::from_le_bytes(rest.array().ok_or_else(damaged)?);
        let received_at_ms = i64::from_le_bytes(rest.array().ok_or_else(damaged)?);
        let len = u32::from_le_bytes(rest.array().ok_or_else(damaged)?);
        let offset = u32::try_from(rest.at).map_err(|_| damaged())?;
        rest.take(len as usize).ok_or_else(damaged)?;
        out.push(Record {
            channel,
            seq,
            received_at_ms,
            offset,
            len,
        });
    }
    Ok(out)
}

/// Reads a blob front to back; `None` past its end.
struct Cursor<'a> {
    blob: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.blob.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_reported() {
        let mut blob = Vec::new();
        let a = push(&mut blob, "chan-a", 7, 1_700, "{\"x\":1}").unwrap();
        let b = push(&mut blob, "b", 1, -5, "").unwrap();
        let got = records(3, &blob).unwrap();
        assert_eq!(
            got,
            vec![
                Record {
                    channel: "chan-a",
                    seq: 7,
                    received_at_ms: 1_700,
                    offset: a.0,
                    len: a.1
                },
                Record {
                    channel: "b",
                    seq: 1,
                    received_at_ms: -5,
                    offset: b.0,
                    len: 0
                },
            ]
        );
        let (off, len) = (a.0 as usize, a.1 as usize);
        assert_eq!(&blob[off..off + len], b"{\"x\":1}");
        let start = off - header_len("chan-a");
        let record = &blob[start..off + len];
        assert_eq!(frame_of(record, "chan-a", 7), Some(&b"{\"x\":1}"[..]));
        assert_eq!(frame_of(record, "chan-a", 8), None, "another seq");
        assert_eq!(frame_of(record, "chan-b", 7), None, "another channel");
        assert_eq!(frame_of(&record[..record.len() - 1], "chan-a", 7), None);
        let err = records(3, &blob[..blob.len() - 3]).unwrap_err();
        assert!(err.to_string().contains("batch 3 is damaged"), "{err}");
    }
}
