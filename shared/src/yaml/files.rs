//! The `-f` inputs: files (any extension), directories (`.yaml`, `.yml` and `.json` files in
//! name order, sub-directories with `-R`) and `-` for stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ManifestError;

/// One input file, read whole.
#[derive(Debug, Clone)]
pub struct Input {
    /// The path as found, or `stdin`.
    pub name: String,
    pub text: String,
}

fn read(path: &Path) -> Result<Input, ManifestError> {
    let bytes = fs_err::read(path).map_err(|e| ManifestError::Read { path: path.to_path_buf(), source: e })?;
    let text = decode(bytes).ok_or_else(|| ManifestError::NotText { path: path.to_path_buf() })?;
    Ok(Input { name: path.display().to_string(), text })
}

/// The text of a file: UTF-8, or UTF-16 with its byte order mark (what Windows PowerShell 5
/// writes with `>`, and what ko's YAML library reads too), without the byte order mark (it
/// belongs to the file, not to the stream the files are joined into, where it would be
/// invalid YAML), and with a block scalar that ends it unbroken marked as such (see
/// `eof_scalar.rs`). `None` for anything else.
fn decode(bytes: Vec<u8>) -> Option<String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = rest.chunks(2).map(|c| <[u8; 2]>::try_from(c).ok().map(unit)).collect::<Option<_>>()?;
        String::from_utf16(&units).ok()
    };
    let text = match bytes.as_slice() {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes)?,
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes)?,
        _ => String::from_utf8(bytes).ok()?,
    };
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    Some(super::eof_scalar::strip_final_block_scalar(lone_returns_as_newlines(text)))
}

/// A file with old Mac line ends (`\r` alone) with `\n` instead. YAML takes any of `\r`,
/// `\n` and `\r\n` for a line break and reads one as the others, so the documents stay the
/// same (ko writes its output with `\n` too); what works on the text by lines (`-l`, block
/// scalars) then sees them.
fn lone_returns_as_newlines(text: String) -> String {
    let bytes = text.as_bytes();
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(if c == '\r' && chars.peek() != Some(&'\n') { '\n' } else { c });
    }
    out
}

/// Named `*.yaml`, `*.yml` or `*.json`, as kubectl and ko pick them (`.yaml` alone too).
fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext))
}

/// The files of a directory to read, in name order. The file this process's output goes to is
/// not one of them: `resolve --watch > config/out.yaml` would read its own output back in.
fn walk(dir: &Path, recursive: bool, streams: &[(u64, u64)], found: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let read_error = |e: std::io::Error| ManifestError::Read { path: dir.to_path_buf(), source: e };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    for path in entries {
        // Symlinked directories are not followed (as kubectl does), so a link loop ends here.
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if path.is_dir() && !is_link {
            if recursive {
                walk(&path, recursive, streams, found)?;
            }
        } else if is_manifest(&path) && path.is_file() {
            if !crate::output::is_stream(streams, &path) {
                found.push(path);
            }
        } else if is_manifest(&path) && is_link && !path.exists() {
            // As ko and kubectl: a manifest whose link broke must not drop out unnoticed.
            return Err(ManifestError::Input {
                path,
                detail: "a symbolic link to nothing (its target does not exist); fix the link or remove it".into(),
            });
        }
    }
    Ok(())
}

/// Reads every input named by `-f`, in the order given (directory entries by name).
pub fn read_inputs(filenames: &[String], recursive: bool) -> Result<Vec<Input>, ManifestError> {
    let mut inputs = Vec::new();
    let mut stdin_used = false;
    for name in filenames {
        if name == "-" {
            if stdin_used {
                continue;
            }
            stdin_used = true;
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| ManifestError::Read { path: PathBuf::from("stdin"), source: e })?;
            let text = decode(bytes).ok_or_else(|| ManifestError::NotText { path: PathBuf::from("stdin") })?;
            inputs.push(Input { name: "stdin".into(), text });
            continue;
        }
        if name.contains("://") {
            return Err(ManifestError::Input {
                path: name.into(),
                detail: "URLs are not supported; download the file and pass its path".into(),
            });
        }
        let path = Path::new(name);
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, recursive, &crate::output::stream_files(), &mut found)?;
            for file in found {
                inputs.push(read(&file)?);
            }
        } else if path.exists() {
            inputs.push(read(path)?);
        } else {
            return Err(ManifestError::Input {
                path: name.into(),
                detail: "no such file or directory (-f takes a file, a directory, or - for stdin)".into(),
            });
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_and_utf16_with_a_byte_order_mark_are_text() {
        let text = "image: ko://example.com/ä\n";
        let le: Vec<u8> = [0xff, 0xfe].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let be: Vec<u8> = [0xfe, 0xff].into_iter().chain(text.encode_utf16().flat_map(u16::to_be_bytes)).collect();
        let bom8: Vec<u8> = "\u{feff}".bytes().chain(text.bytes()).collect();
        for bytes in [text.as_bytes().to_vec(), bom8, le, be] {
            assert_eq!(decode(bytes).as_deref(), Some(text));
        }
        assert_eq!(decode(vec![0xff, 0xfe, b'a']), None, "an odd number of bytes");
        assert_eq!(decode(vec![0xff, 0xfe, 0x00, 0xd8]), None, "an unpaired surrogate");
        assert_eq!(decode(vec![b'a', 0xff]), None);
    }

    #[test]
    fn old_mac_line_ends_become_newlines_and_windows_ones_stay() {
        let decoded = |text: &str| decode(text.as_bytes().to_vec()).unwrap();
        assert_eq!(decoded("a: 1\rb: |\r  x\r"), "a: 1\nb: |\n  x\n");
        assert_eq!(decoded("a: 1\r\nb: 2\r\n"), "a: 1\r\nb: 2\r\n");
        assert_eq!(decoded("a: 1\r\nb: 2\rc: é\r"), "a: 1\r\nb: 2\nc: é\n");
    }

    #[test]
    fn directories_are_walked_in_name_order_and_recursively_only_with_r() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        let files =
            [("b.yaml", "b"), ("a.yml", "a"), (".yaml", "0"), ("c.json", "c"), ("notes.txt", "x"), ("sub/d.yaml", "d")];
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        let dir_arg = root.display().to_string();
        let flat: Vec<_> =
            read_inputs(std::slice::from_ref(&dir_arg), false).unwrap().into_iter().map(|i| i.text).collect();
        assert_eq!(flat, ["0", "a", "b", "c"]);
        let deep: Vec<_> = read_inputs(&[dir_arg], true).unwrap().into_iter().map(|i| i.text).collect();
        assert_eq!(deep, ["0", "a", "b", "c", "d"]);
        let single = read_inputs(&[root.join("notes.txt").display().to_string()], false).unwrap();
        assert_eq!(single[0].text, "x", "a named file is read whatever its extension");
    }

    #[test]
    fn missing_files_and_urls_are_refused() {
        let error = read_inputs(&["/nonexistent/app.yaml".into()], false).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/app.yaml"), "{error}");
        let error = read_inputs(&["https://example.com/a.yaml".into()], false).unwrap_err();
        assert!(error.to_string().contains("URLs are not supported"), "{error}");
    }

    #[test]
    fn a_broken_link_to_a_manifest_in_a_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("b.yaml")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("notes.txt")).unwrap();
        let error = read_inputs(&[dir.path().display().to_string()], false).unwrap_err().to_string();
        assert!(error.contains("b.yaml: a symbolic link to nothing"), "{error}");
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert_eq!(
            read_inputs(&[dir.path().display().to_string()], false).unwrap().len(),
            1,
            "other files' links are not read"
        );
    }
}
