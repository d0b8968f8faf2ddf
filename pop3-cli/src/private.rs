//! Files and directories that only their owner may read: mail, the state,
//! its lock and the mbox intent.
//!
//! Everything `pop3` creates gets 0600 (files) or 0700 (directories) as
//! MDAs do, whatever the umask: under the common 022 the default modes
//! (0644, 0755) would show every message to every local user. The umask can
//! only take bits away from these, never add any. A file that exists
//! already keeps its mode (an mbox shared with a group stays shared).

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of every file `pop3` creates.
pub(crate) const FILE_MODE: u32 = 0o600;
/// The mode of every directory `pop3` creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// `OpenOptions` whose `create`/`create_new` makes a 0600 file; the caller
/// adds what it needs (write, append, create, ...).
pub(crate) fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// `DirBuilder` that makes 0700 directories.
fn dir_builder(recursive: bool) -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
}

/// Creates the directory `path` (its parent must exist) as 0700.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    dir_builder(false).create(path)
}

/// Creates `path` and its missing parents, each 0700; existing ones are
/// left as they are.
pub(crate) fn create_dir_all(path: &Path) -> io::Result<()> {
    dir_builder(true).create(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn created_private_existing_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a").join("b");
        create_dir_all(&nested).expect("dirs");
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        assert_eq!(mode(&nested), DIR_MODE);
        let file = nested.join("f");
        file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .expect("create");
        assert_eq!(mode(&file), FILE_MODE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        file_options()
            .append(true)
            .create(true)
            .open(&file)
            .expect("open");
        assert_eq!(mode(&file), 0o640);
    }
}
