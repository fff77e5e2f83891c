//! Files the CLI writes (`exchange --out`, the precompiled component): atomically, so a reader
//! sees the old content or the new, never half a token, and with the mode asked for from the
//! first byte on.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temporary file in the same folder, created with `mode`
/// (0600 for secrets) and renamed over `path`. A symlink at `path` is replaced, not followed.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temporary(path)?;
    let written = create_new(&tmp, mode).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `.NAME.PID.tmp` beside `path`.
fn temporary(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(folder.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id())))
}

/// Creates `path` with `mode`; a leftover from a killed process with the same pid is replaced.
fn create_new(path: &Path, mode: u32) -> io::Result<fs::File> {
    let open = || OpenOptions::new().write(true).create_new(true).mode(mode).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::write_atomically;

    #[test]
    fn secrets_are_replaced_whole_with_mode_0600_and_symlinks_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("gao-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let elsewhere = dir.join("elsewhere");
        std::fs::write(&elsewhere, "keep").unwrap();
        let link = dir.join("link");
        symlink(&elsewhere, &link).unwrap();
        write_atomically(&link, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "secret");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert!(write_atomically(&dir.join("missing/token"), b"x", 0o600).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
