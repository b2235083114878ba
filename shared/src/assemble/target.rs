//! Where ko's files go in an image of each operating system. A Linux layer holds the image's
//! file system as it is (`ko-app/<name>`, `var/run/ko/...`). A Windows layer holds it under
//! `Files/`, next to an empty `Hives/` (the registry hives the container runtime expects), and
//! each file carries the security descriptor that lets the container's users run it; paths in
//! the config are `C:\...` and `PATH` is `;`-separated.

use crate::platform::Platform;

/// A Windows security descriptor, base64 (PAX record `MSWINDOWS.rawsd`): owner and group
/// BUILTIN\Users (SDDL `O:BUG:BU`). Without it, Windows does not let the container run the
/// binary. The same bytes as ko's layers carry.
const WINDOWS_USERS_SD: &[u8] = b"AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageOs {
    Linux,
    Windows,
}

impl ImageOs {
    /// Windows for a `windows` platform; the Linux layout for every other (Go's other Unix
    /// targets included, as ko does).
    pub fn of(platform: &Platform) -> ImageOs {
        if platform.os == "windows" { ImageOs::Windows } else { ImageOs::Linux }
    }

    /// Directories every layer starts with, before the image's own file system.
    pub fn layer_roots(self) -> &'static [&'static str] {
        match self {
            ImageOs::Linux => &[],
            ImageOs::Windows => &["Hives", "Files"],
        }
    }

    /// An image path (`ko-app/x`, no leading `/`) as a layer entry name.
    pub fn entry(self, path: &str) -> String {
        match self {
            ImageOs::Linux => path.to_string(),
            ImageOs::Windows => format!("Files/{path}"),
        }
    }

    /// The PAX records every file of a layer carries.
    pub fn file_records(self) -> Vec<(String, Vec<u8>)> {
        match self {
            ImageOs::Linux => vec![],
            ImageOs::Windows => vec![("MSWINDOWS.rawsd".to_string(), WINDOWS_USERS_SD.to_vec())],
        }
    }

    /// An image path (`/ko-app/x`) as the program inside the container sees it.
    pub fn runtime_path(self, path: &str) -> String {
        match self {
            ImageOs::Linux => path.to_string(),
            ImageOs::Windows => format!("C:{}", path.replace('/', "\\")),
        }
    }

    /// The separator of `PATH`'s entries.
    pub fn path_list_separator(self) -> char {
        match self {
            ImageOs::Linux => ':',
            ImageOs::Windows => ';',
        }
    }

    /// Part of a cached layer's key: the same binary makes another layer for each.
    pub fn key(self) -> &'static [u8] {
        match self {
            ImageOs::Linux => b"linux",
            ImageOs::Windows => b"windows",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_are_under_files_and_on_drive_c() {
        let windows = ImageOs::of(&Platform::parse("windows/amd64:10.0.20348").unwrap());
        assert_eq!(windows, ImageOs::Windows);
        assert_eq!(windows.entry("ko-app/app"), "Files/ko-app/app");
        assert_eq!(windows.runtime_path("/ko-app/app"), r"C:\ko-app\app");
        assert_eq!(windows.runtime_path("/var/run/ko"), r"C:\var\run\ko");
        let linux = ImageOs::of(&Platform::parse("linux/arm64").unwrap());
        assert_eq!(linux.entry("ko-app/app"), "ko-app/app");
        assert_eq!(linux.runtime_path("/var/run/ko"), "/var/run/ko");
        assert!(linux.file_records().is_empty() && linux.layer_roots().is_empty());
    }
}
