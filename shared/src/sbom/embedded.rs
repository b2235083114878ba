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
    // An ELF file (every Linux binary) says where its `.go.buildinfo` section is, a few
    // small reads instead of a scan through the two thirds of the file before it.
    if let Some(at) = elf_section(&file, b".go.buildinfo")?
        && let Some(found) = decode(&file, at)?
    {
        return Ok(Some(found));
    }
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

/// Section headers beyond this many are not believed: Go writes a few dozen.
const MAX_SECTIONS: usize = 4096;

/// The file offset of the ELF section `name`, or `None` when `file` is not ELF (32- or
/// 64-bit, either byte order) or has no such section.
fn elf_section(file: &File, name: &[u8]) -> io::Result<Option<u64>> {
    let mut ident = [0u8; 64];
    if file.read_at(&mut ident, 0)? < 52 || ident[..4] != *b"\x7fELF" {
        return Ok(None);
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return Ok(None),
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        _ => return Ok(None),
    };
    let int = |bytes: &[u8], at: usize, len: usize| -> u64 {
        let field = &bytes[at..at + len];
        let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
        if big { field.iter().fold(0, fold) } else { field.iter().rev().fold(0, fold) }
    };
    // Where the section headers are, their size and count, and which one names the others.
    let (table, entry, count, names) = if wide {
        (int(&ident, 0x28, 8), int(&ident, 0x3a, 2), int(&ident, 0x3c, 2), int(&ident, 0x3e, 2))
    } else {
        (int(&ident, 0x20, 4), int(&ident, 0x2e, 2), int(&ident, 0x30, 2), int(&ident, 0x32, 2))
    };
    let (entry, count) = (entry as usize, count as usize);
    let least = if wide { 64 } else { 40 };
    if entry < least || count == 0 || count > MAX_SECTIONS || names as usize >= count {
        return Ok(None);
    }
    let mut headers = vec![0u8; entry * count];
    if file.read_at(&mut headers, table)? < headers.len() {
        return Ok(None);
    }
    // Name (an offset into the names section), file offset and size of section `i`.
    let section = |i: usize| {
        let h = &headers[i * entry..(i + 1) * entry];
        if wide { (int(h, 0, 4), int(h, 24, 8), int(h, 32, 8)) } else { (int(h, 0, 4), int(h, 16, 4), int(h, 20, 4)) }
    };
    let (_, names_at, names_len) = section(names as usize);
    if names_len > (1 << 20) {
        return Ok(None);
    }
    let mut table = vec![0u8; names_len as usize];
    if file.read_at(&mut table, names_at)? < table.len() {
        return Ok(None);
    }
    for i in 0..count {
        let (at, offset, _) = section(i);
        let wanted =
            table.get(at as usize..).is_some_and(|rest| rest.starts_with(name) && rest.get(name.len()) == Some(&0));
        if wanted {
            return Ok(Some(offset));
        }
    }
    Ok(None)
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

    /// An ELF file (`wide`: 64-bit; `big`: big-endian) of three sections, the names, a
    /// decoy and `.go.buildinfo`, whose bytes `payload` sit at an odd offset, where the scan
    /// (16-byte aligned) would not find them.
    fn elf(wide: bool, big: bool, payload: &[u8]) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, at: usize, v: u64, len: usize| {
            let bytes = v.to_be_bytes();
            let field = &bytes[8 - len..];
            for (i, b) in field.iter().enumerate() {
                out[at + if big { i } else { len - 1 - i }] = *b;
            }
        };
        let (entry, header) = if wide { (64, 64) } else { (40, 52) };
        let names = b"\0.shstrtab\0.go.buildinfo.not\0.go.buildinfo\0";
        let names_at = header + 3 * entry;
        let payload_at = (names_at + names.len() + 64) | 1;
        let mut file = vec![0u8; payload_at];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = if wide { 2 } else { 1 };
        file[5] = if big { 2 } else { 1 };
        let fields = if wide { [0x28, 0x3a, 0x3c, 0x3e] } else { [0x20, 0x2e, 0x30, 0x32] };
        put(&mut file, fields[0], header as u64, if wide { 8 } else { 4 });
        put(&mut file, fields[1], entry as u64, 2);
        put(&mut file, fields[2], 3, 2);
        put(&mut file, fields[3], 0, 2);
        // (name offset, file offset, size) of each section.
        let sections = [(1, names_at, names.len()), (11, 0, 0), (29, payload_at, payload.len())];
        for (i, (name, offset, size)) in sections.into_iter().enumerate() {
            let at = header + i * entry;
            put(&mut file, at, name, 4);
            if wide {
                put(&mut file, at + 24, offset as u64, 8);
                put(&mut file, at + 32, size as u64, 8);
            } else {
                put(&mut file, at + 16, offset as u64, 4);
                put(&mut file, at + 20, size as u64, 4);
            }
        }
        file[names_at..names_at + names.len()].copy_from_slice(names);
        file.extend_from_slice(payload);
        file
    }

    #[test]
    fn the_build_information_is_found_by_its_elf_section_in_any_elf_class_and_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        let modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n";
        let whole = binary("go1.26.8", modinfo);
        let payload = &whole[CHUNK + 48..];
        for (wide, big) in [(true, false), (true, true), (false, false), (false, true)] {
            std::fs::write(&path, elf(wide, big, payload)).unwrap();
            let file = File::open(&path).unwrap();
            let at = elf_section(&file, b".go.buildinfo").unwrap().expect("the section");
            assert_eq!(at % 2, 1, "wide {wide}, big {big}");
            assert_eq!(read(&path).unwrap(), Some(("go1.26.8".to_string(), modinfo.to_string())));
            assert_eq!(elf_section(&file, b".go.build").unwrap(), None);
        }
        // Not ELF, or headers cut short: no section, and the scan decides.
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(elf_section(&File::open(&path).unwrap(), b".go.buildinfo").unwrap(), None);
        std::fs::write(&path, &elf(true, false, payload)[..100]).unwrap();
        assert_eq!(elf_section(&File::open(&path).unwrap(), b".go.buildinfo").unwrap(), None);
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
