//! The Docker CLI driver moved to the daemon medium (`media::daemon`); this path stays for the
//! publishers until they name it there.

pub use crate::media::daemon::{Docker, DockerError};
