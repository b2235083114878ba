//! Linux file capabilities for the app binary (`builds[].linux_capabilities`), as ko sets
//! them: parsed from capability names or `cap_from_text(3)` clauses and encoded as the
//! `security.capability` extended attribute (VFS capabilities, revision 2).

/// Capability names by number, without the `CAP_` prefix (linux/capability.h).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

pub const XATTR: &str = "security.capability";
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CapsError {
    #[error(
        "linux_capabilities: unknown capability {0:?}; use names like net_bind_service or cap_chown, numbers 0-63, `all`, or cap_from_text clauses like cap_net_bind_service=p"
    )]
    Name(String),
    #[error(
        "linux_capabilities: unknown flag {flag:?} in {term:?}; flags are p (permitted), i (inheritable) and e (effective)"
    )]
    Flag { term: String, flag: char },
}

/// Permitted, inheritable and effective sets, one bit per capability number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileCaps {
    pub permitted: u64,
    pub inheritable: u64,
    pub effective: u64,
}

fn all_known() -> u64 {
    (1u64 << NAMES.len()) - 1
}

fn one(name: &str) -> Result<u64, CapsError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(all_known());
    }
    if let Ok(n) = bare.parse::<u32>()
        && n < 64
    {
        return Ok(1 << n);
    }
    NAMES.iter().position(|n| *n == bare).map(|i| 1 << i).ok_or_else(|| CapsError::Name(name.to_string()))
}

fn names(list: &str) -> Result<u64, CapsError> {
    list.split(',').filter(|n| !n.is_empty()).try_fold(0, |acc, n| Ok(acc | one(n)?))
}

impl FileCaps {
    /// Parses the configured terms: bare names are permitted; clauses follow `cap_from_text(3)`.
    pub fn parse(terms: &[String]) -> Result<FileCaps, CapsError> {
        let mut caps = FileCaps::default();
        for term in terms.iter().flat_map(|t| t.split_whitespace()) {
            let Some(op_at) = term.find(['=', '+', '-']) else {
                caps.permitted |= names(term)?;
                continue;
            };
            let (list, mut rest) = term.split_at(op_at);
            let set = if list.is_empty() { all_known() } else { names(list)? };
            while let Some(op) = rest.chars().next() {
                let flags_end = rest[1..].find(['=', '+', '-']).map(|i| i + 1).unwrap_or(rest.len());
                let flags = &rest[1..flags_end];
                if op == '=' {
                    caps.permitted &= !set;
                    caps.inheritable &= !set;
                    caps.effective &= !set;
                }
                for flag in flags.chars() {
                    let target = match flag {
                        'p' => &mut caps.permitted,
                        'i' => &mut caps.inheritable,
                        'e' => &mut caps.effective,
                        _ => return Err(CapsError::Flag { term: term.to_string(), flag }),
                    };
                    if op == '-' {
                        *target &= !set;
                    } else {
                        *target |= set;
                    }
                }
                rest = &rest[flags_end..];
            }
        }
        Ok(caps)
    }

    /// The `security.capability` value, or `None` when no capability is permitted or inheritable.
    pub fn xattr(&self) -> Option<Vec<u8>> {
        if self.permitted == 0 && self.inheritable == 0 {
            return None;
        }
        let magic = VFS_CAP_REVISION_2 | if self.effective != 0 { VFS_CAP_FLAGS_EFFECTIVE } else { 0 };
        let words = [
            magic,
            self.permitted as u32,
            self.inheritable as u32,
            (self.permitted >> 32) as u32,
            (self.inheritable >> 32) as u32,
        ];
        Some(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(terms: &[&str]) -> Option<String> {
        let terms: Vec<String> = terms.iter().map(|s| s.to_string()).collect();
        FileCaps::parse(&terms).unwrap().xattr().map(|x| base64::engine::general_purpose::STANDARD.encode(x))
    }

    #[test]
    fn encodes_like_ko() {
        assert_eq!(b64(&["chown"]).as_deref(), Some("AAAAAgEAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(b64(&["cap_chown=ep"]).as_deref(), Some("AQAAAgEAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(b64(&["CHOWN", "0"]), b64(&["cap_chown=p"]));
        assert_eq!(b64(&[]), None);
        assert_eq!(b64(&["chown-p"]), None);
    }

    #[test]
    fn clauses_set_and_clear_flags() {
        let terms = vec!["net_bind_service,sys_admin=pe".to_string(), "sys_admin-e".to_string()];
        let caps = FileCaps::parse(&terms).unwrap();
        assert_eq!(caps.permitted, (1 << 10) | (1 << 21));
        assert_eq!(caps.effective, 1 << 10);
        let all = FileCaps::parse(&["=p".to_string()]).unwrap();
        assert_eq!(all.permitted, all_known());
        assert_eq!(FileCaps::parse(&["checkpoint_restore".into()]).unwrap().xattr().unwrap()[13], 1);
    }

    #[test]
    fn bad_names_and_flags_are_named() {
        assert_eq!(FileCaps::parse(&["net_bind".into()]), Err(CapsError::Name("net_bind".into())));
        assert!(matches!(FileCaps::parse(&["chown=px".into()]), Err(CapsError::Flag { flag: 'x', .. })));
        assert!(CapsError::Name("x".into()).to_string().contains("net_bind_service"));
    }
}
