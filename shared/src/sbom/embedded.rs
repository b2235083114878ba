//! The build information Go writes into every binary it links, read straight from the file:
//! the Go version and the module lines that `go version -m` prints, without starting Go once
//! per image. Since Go 1.18 the `.go.buildinfo` data begins, at a 16-byte aligned offset,
//! with a 32-byte header (`\xff Go buildinf:`, pointer size, flags) followed by two strings,
//! each prefixed by its length as a varint: the version, then the module information framed
//! by 16-byte sentinels (Go's `debug/buildinfo` reads the same layout). Older binaries keep
//! pointers instead; for them, and for anything that does not read cleanly, the answer is
//! `None` and the caller asks `go version -m`.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const ALIGN: usize = 16;
const HEADER: u64 = 32;
/// The flags bit of the inline-strings layout.
const INLINE: u8 = 0x2;
/// The sentinels around the module information are this long, each.
const SENTINEL: usize = 16;
/// Longer strings are not build information (the biggest module lists are tens of KiB).
const MAX_STRING: u64 = 4 << 20;
/// The scan reads this much at a time (a multiple of `ALIGN`).
const CHUNK: usize = 1 << 20;

/// The Go version and the module lines (`path`, `mod`, `dep`, `=>`, `build`, one per line)
/// embedded in `path`, or `None` when there are none in the inline layout.
pub fn read(path: &Path) -> io::Result<Option<(String, String)>> {
    let mut file = File::open(path)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let filled = fill(&mut file, &mut chunk)?;
        if filled < MAGIC.len() {
            return Ok(None);
        }
        for at in (0..=filled - MAGIC.len()).step_by(ALIGN) {
            if chunk[at..at + MAGIC.len()] == MAGIC[..]
                && let Some(found) = decode(&file, offset + at as u64)?
            {
                return Ok(Some(found));
            }
        }
        if filled < CHUNK {
            return Ok(None);
        }
        offset += CHUNK as u64;
    }
}

/// Reads until `buf` is full or the file ends; how much was read.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The header at `at` and the two strings after it, if they are build information in the
/// inline layout (a copy of the magic elsewhere, in a program's own strings, is not).
fn decode(file: &File, at: u64) -> io::Result<Option<(String, String)>> {
    let mut header = [0u8; HEADER as usize];
    if file.read_at(&mut header, at)? < header.len() || header[15] & INLINE == 0 {
        return Ok(None);
    }
    let Some((version, next)) = string(file, at + HEADER)? else { return Ok(None) };
    let Some((modinfo, _)) = string(file, next)? else { return Ok(None) };
    // The sentinels are binary: the text is what lies between them.
    let (Ok(version), Ok(modinfo)) = (String::from_utf8(version), std::str::from_utf8(unframe(&modinfo))) else {
        return Ok(None);
    };
    if version.is_empty() || !version.contains("go") {
        return Ok(None);
    }
    Ok(Some((version, modinfo.to_string())))
}

/// The varint-prefixed string at `at`, and the offset after it.
fn string(file: &File, at: u64) -> io::Result<Option<(Vec<u8>, u64)>> {
    let mut prefix = [0u8; 10];
    let got = file.read_at(&mut prefix, at)?;
    let Some((len, used)) = uvarint(&prefix[..got]) else { return Ok(None) };
    if len > MAX_STRING {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    let start = at + used as u64;
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], start + read as u64)? {
            0 => return Ok(None),
            n => read += n,
        }
    }
    Ok(Some((bytes, start + len)))
}

/// An unsigned LEB128 varint (Go's `binary.Uvarint`): the value and the bytes it took.
fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The module information without its sentinels; empty when it is not framed as Go frames it.
fn unframe(modinfo: &[u8]) -> &[u8] {
    if modinfo.len() > 2 * SENTINEL && modinfo[modinfo.len() - SENTINEL - 1] == b'\n' {
        &modinfo[SENTINEL..modinfo.len() - SENTINEL]
    } else {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// A file with `junk` bytes, a decoy copy of the magic (as a program's own string would
    /// hold it, unaligned and aligned), then a real header at an aligned offset.
    fn binary(version: &str, modinfo: &str) -> Vec<u8> {
        let mut file = vec![0u8; 100];
        file.extend_from_slice(MAGIC); // unaligned decoy
        file.resize(CHUNK - 16, 7);
        file.extend_from_slice(MAGIC); // aligned decoy straddling the first chunk's end
        file.extend_from_slice(&[8, 0]); // pointer layout: not ours
        file.resize(CHUNK + 48, 7);
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&[8, INLINE]);
        file.resize(CHUNK + 48 + HEADER as usize, 0);
        // Go's sentinels are not UTF-8.
        let mut framed = vec![0xafu8; SENTINEL];
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(&[0xf9u8; SENTINEL]);
        for s in [version.as_bytes(), &framed] {
            varint(s.len(), &mut file);
            file.extend_from_slice(s);
        }
        file.extend_from_slice(&[0u8; 64]);
        file
    }

    #[test]
    fn finds_the_aligned_inline_header_past_decoys_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        let modinfo =
            "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.1.0\th1:abc=\n";
        std::fs::write(&path, binary("go1.26.8", modinfo)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(("go1.26.8".to_string(), modinfo.to_string())));
    }

    #[test]
    fn files_without_build_information_give_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![0xffu8; 3 * CHUNK + 5]).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        std::fs::write(&path, b"short").unwrap();
        assert_eq!(read(&path).unwrap(), None);
        assert!(read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn varints_and_frames_read_as_go_writes_them() {
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
        assert_eq!(unframe(b"short"), b"");
        let mut framed = vec![0xafu8; 16];
        framed.extend_from_slice(b"path\tx\n");
        framed.extend_from_slice(&[0xf9u8; 16]);
        assert_eq!(unframe(&framed), b"path\tx\n");
    }
}
