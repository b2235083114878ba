//! What the registry tier knows about one action: its output (Go's output ID, the sha256 of
//! the bytes), the size, where the bytes are, and when the entry was written. Entries travel
//! in shard manifests (`shard.rs`), one line each:
//!
//! ```text
//! <action ID> <output ID> <size> <unix seconds> <form>
//! ```
//!
//! (IDs in hex) where the form is one of
//!
//! - `i:<base64>`, **inline**: an output of at most [`INLINE_MAX`] bytes travels in the line
//!   itself. Most of Go's outputs are that small, so most hits cost no request of their own;
//! - `p:<hex>:<size>:<offset>`, **packed**: an output of at most [`PACKED_MAX`] bytes is
//!   part of a pack, a blob of about [`PACK_TARGET`] bytes that holds the outputs one build
//!   put around the same time, one after the other; the entry names the pack and where the
//!   output starts in it (its length is the entry's size). One upload carries many outputs;
//! - `b`, **blob**: a larger output is a blob whose digest is its output ID;
//! - `g:<hex>:<size>`, **gzip**: the output gzipped, a blob of another digest. This form is
//!   written only for an output whose own blob was found corrupt: the registry cannot replace
//!   a blob under its digest, so the entry names other bytes.
//!
//! Every form is checked against the output ID when it is read (`remote.rs`).

use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::digest::Digest;

/// Outputs up to this size are stored inline, in their shard's manifest.
pub const INLINE_MAX: usize = 16 << 10;
/// Outputs up to this size (and over [`INLINE_MAX`]) are stored in packs.
pub const PACKED_MAX: usize = 1 << 20;
/// A pack is uploaded once it holds this many bytes (and when Go finishes).
pub const PACK_TARGET: usize = 4 << 20;

/// Where an entry's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Inline(bytes::Bytes),
    Packed { pack: Digest, size: u64, offset: u64 },
    Blob,
    Gzip { blob: Digest, size: u64 },
}

/// What the registry maps an action to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    pub output: Digest,
    pub size: u64,
    pub stored: Stored,
}

impl RemoteEntry {
    /// The blob the entry names, with its size, unless it is inline.
    pub fn blob(&self) -> Option<(&Digest, u64)> {
        match &self.stored {
            Stored::Inline(_) => None,
            Stored::Blob => Some((&self.output, self.size)),
            Stored::Packed { pack: blob, size, .. } | Stored::Gzip { blob, size } => Some((blob, *size)),
        }
    }
}

/// An entry with the time it was written (seconds since the epoch), which decides what a
/// full shard drops first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub entry: RemoteEntry,
    pub time: u64,
}

/// Appends the line of one action's record (without the newline).
pub fn write_line(action: &str, record: &Record, out: &mut String) {
    let RemoteEntry { output, size, stored } = &record.entry;
    let _ = write!(out, "{action} {} {size} {} ", output.hex(), record.time);
    match stored {
        Stored::Inline(data) => {
            out.push_str("i:");
            STANDARD.encode_string(data, out);
        }
        Stored::Packed { pack, size, offset } => {
            let _ = write!(out, "p:{}:{size}:{offset}", pack.hex());
        }
        Stored::Blob => out.push('b'),
        Stored::Gzip { blob, size } => {
            let _ = write!(out, "g:{}:{size}", blob.hex());
        }
    }
}

/// The action (in hex) and record of one line; `None` for a line that is not one.
pub fn parse_line(line: &str) -> Option<(String, Record)> {
    let mut words = line.split(' ');
    let action = words.next().filter(|a| is_hex_id(a))?;
    let output = words.next().filter(|o| is_hex_id(o))?;
    let size = words.next()?.parse().ok()?;
    let time = words.next()?.parse().ok()?;
    let form = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let stored = match form.split_once(':') {
        None if form == "b" => Stored::Blob,
        Some(("i", data)) => Stored::Inline(STANDARD.decode(data).ok()?.into()),
        Some(("p", rest)) => {
            let mut fields = rest.split(':');
            let (pack, size, offset) = (fields.next()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
            if fields.next().is_some() {
                return None;
            }
            Stored::Packed { pack: sha256(pack.to_string())?, size, offset }
        }
        Some(("g", rest)) => {
            let (blob, size) = rest.split_once(':')?;
            Stored::Gzip { blob: sha256(blob.to_string())?, size: size.parse().ok()? }
        }
        _ => return None,
    };
    let entry = RemoteEntry { output: sha256(output.to_string())?, size, stored };
    Some((action.to_string(), Record { entry, time }))
}

fn is_hex_id(word: &str) -> bool {
    word.len() == 64 && word.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sha256(hex: String) -> Option<Digest> {
    Digest::parse(&format!("sha256:{hex}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_through_its_line() {
        let output = Digest::of(b"archive");
        let action = "ab".repeat(32);
        let forms = [
            Stored::Inline(bytes::Bytes::from_static(b"archive")),
            Stored::Inline(bytes::Bytes::new()),
            Stored::Packed { pack: Digest::of(b"pack"), size: 4 << 20, offset: 12345 },
            Stored::Blob,
            Stored::Gzip { blob: Digest::of(b"gzipped"), size: 30 },
        ];
        for stored in forms {
            let record = Record { entry: RemoteEntry { output: output.clone(), size: 7, stored }, time: 1_700_000_000 };
            let mut line = String::new();
            write_line(&action, &record, &mut line);
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(parse_line(&line), Some((action.clone(), record)), "{line}");
        }
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_skipped() {
        let (action, output) = ("ab".repeat(32), Digest::of(b"x").hex().to_string());
        for bad in [
            String::new(),
            format!("{action} {output} 7 1"),
            format!("{action} {output} 7 1 b extra"),
            format!("{action} {output} seven 1 b"),
            format!("{} {output} 7 1 b", "AB".repeat(32)),
            format!("{action} {output} 7 1 i:not base64!"),
            format!("{action} {output} 7 1 g:{output}"),
            format!("{action} {output} 7 1 p:{output}:100"),
            format!("{action} {output} 7 1 p:{output}:100:5:6"),
            format!("{action} {output} 7 1 z"),
        ] {
            assert_eq!(parse_line(&bad), None, "{bad}");
        }
    }
}
