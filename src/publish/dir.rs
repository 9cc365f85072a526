//! A directory destination: the depot or an `fs` origin. Objects are written under a temporary
//! name, fsynced and renamed into place, so a reader never sees half an object and a crash
//! leaves only a temporary file the next write into that directory removes.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Destination, PublishError};
use crate::engine::fsutil;

pub struct DirDestination {
    label: String,
    root: PathBuf,
}

impl DirDestination {
    pub fn new(label: impl Into<String>, root: PathBuf) -> DirDestination {
        DirDestination { label: label.into(), root }
    }

    /// The path of object `rel`; `None` for a path that could leave the root.
    fn path_of(&self, rel: &str) -> Option<PathBuf> {
        let ok = !rel.is_empty() && rel.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        ok.then(|| self.root.join(rel))
    }

    fn fail(&self, what: &str, rel: &str, e: std::io::Error) -> PublishError {
        // Disk full or a missing mount may pass; the kind says which without the box's paths.
        PublishError::new(format!("{}: {what} {rel} failed ({})", self.label, e.kind()), true)
    }

    fn bad_path(&self, rel: &str) -> PublishError {
        PublishError::new(format!("{}: `{rel}` is not a path below the target", self.label), false)
    }

    /// Temp name in the target directory, fsync, rename, fsync of the directory. First removes
    /// what an interrupted earlier write left in that directory: every directory has one writer
    /// at a time (one build's objects, or the app's pointer, which commit and deploy never
    /// write at once), so a temporary file there now is a crash's leftover.
    fn write_with(&self, dest: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
        let dir = fsutil::parent(dest);
        std::fs::create_dir_all(&dir)?;
        fsutil::remove_leftovers(&dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(fsutil::temp_name(&name));
        let result = (|| {
            write(&temp)?;
            File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, dest)?;
            File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

impl Destination for DirDestination {
    fn label(&self) -> &str {
        &self.label
    }

    /// An object already there under its final name is whole (it got there by rename): skipped.
    /// On the filesystem of `src`, the object is a hard link to it rather than a copy: no byte
    /// is read or written again, and the fsync finds nothing dirty. That is safe because every
    /// `src` is a published object in the depot, and published objects are immutable: written
    /// once (temp, fsync, rename), never modified in place, and removed by unlinking, which
    /// leaves every other link whole. Anywhere else (another filesystem, no hard links), a copy.
    fn put_file(&self, rel: &str, src: &Path) -> Result<(), PublishError> {
        let dest = self.path_of(rel).ok_or_else(|| self.bad_path(rel))?;
        if dest.exists() {
            return Ok(());
        }
        self.write_with(&dest, |temp| link_or_copy(src, temp)).map_err(|e| self.fail("publishing", rel, e))
    }

    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let dest = self.path_of(rel).ok_or_else(|| self.bad_path(rel))?;
        self.write_with(&dest, |temp| std::fs::write(temp, bytes)).map_err(|e| self.fail("writing", rel, e))
    }

    fn remove_tree(&self, rel: &str) -> Result<(), PublishError> {
        let path = self.path_of(rel).ok_or_else(|| self.bad_path(rel))?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.fail("removing", rel, e)),
        }
    }

    fn check(&self) -> Result<(), PublishError> {
        std::fs::create_dir_all(&self.root).map_err(|e| {
            PublishError::new(format!("{}: the origin directory cannot be created ({})", self.label, e.kind()), true)
        })
    }
}

/// A hard link to `src` at `temp`, or a copy where the link cannot be made (`EXDEV` across
/// filesystems, `EPERM` where the filesystem has no hard links, `EMLINK`, …): a copy is always
/// correct, the link only cheaper.
fn link_or_copy(src: &Path, temp: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(src, temp) {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(src, temp).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_published_once_replaced_by_put_bytes_and_removed_as_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let dest = DirDestination::new("depot", dir.path().join("root"));
        let src = dir.path().join("src");
        std::fs::write(&src, b"data").unwrap();
        dest.put_file("dxf/a/b/0001/x/pack-00000", &src).unwrap();
        // A different file under the source's name (the depot replaces, never edits in place).
        let replacement = dir.path().join("replacement");
        std::fs::write(&replacement, b"changed").unwrap();
        std::fs::rename(&replacement, &src).unwrap();
        dest.put_file("dxf/a/b/0001/x/pack-00000", &src).unwrap();
        let published = dir.path().join("root/dxf/a/b/0001/x/pack-00000");
        assert_eq!(std::fs::read(&published).unwrap(), b"data", "a whole object is not written again");
        dest.put_bytes("dxf/a/b/current.json", b"{}").unwrap();
        dest.put_bytes("dxf/a/b/current.json", b"{\"buildId\":1}").unwrap();
        assert_eq!(std::fs::read(dir.path().join("root/dxf/a/b/current.json")).unwrap(), b"{\"buildId\":1}");
        dest.remove_tree("dxf/a").unwrap();
        dest.remove_tree("dxf/a").unwrap();
        assert!(!dir.path().join("root/dxf/a").exists());
    }

    #[test]
    fn an_object_on_the_depots_filesystem_is_a_hard_link_and_removing_it_leaves_the_depot_whole() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let depot_object = dir.path().join("depot-pack");
        std::fs::write(&depot_object, b"pack bytes").unwrap();
        let origin = DirDestination::new("deployment cdn", dir.path().join("cdn"));
        origin.put_file("dxf/a/b/0001/x/pack-00000", &depot_object).unwrap();
        let published = dir.path().join("cdn/dxf/a/b/0001/x/pack-00000");
        assert_eq!(std::fs::metadata(&published).unwrap().ino(), std::fs::metadata(&depot_object).unwrap().ino());
        origin.remove_tree("dxf/a").unwrap();
        assert_eq!(std::fs::read(&depot_object).unwrap(), b"pack bytes");
    }

    #[test]
    fn an_object_is_copied_where_it_cannot_be_linked() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"pack bytes").unwrap();
        // A name that is taken makes the link fail (EEXIST) as another filesystem (EXDEV) would,
        // which a test cannot count on having.
        let temp = dir.path().join("temp");
        std::fs::write(&temp, b"something else, longer").unwrap();
        link_or_copy(&src, &temp).unwrap();
        assert_eq!(std::fs::read(&temp).unwrap(), b"pack bytes");
        assert_ne!(std::fs::metadata(&temp).unwrap().ino(), std::fs::metadata(&src).unwrap().ino());
    }

    #[test]
    fn a_pointer_write_removes_the_temporary_file_a_crash_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = DirDestination::new("depot", dir.path().join("root"));
        let app_dir = dir.path().join("root/dxf/a/b");
        std::fs::create_dir_all(&app_dir).unwrap();
        std::fs::write(app_dir.join(fsutil::temp_name("current.json")), b"{\"build").unwrap();
        dest.put_bytes("dxf/a/b/current.json", b"{\"buildId\":1}").unwrap();
        let entries: Vec<_> = std::fs::read_dir(&app_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(entries, ["current.json"]);
    }

    #[test]
    fn a_path_that_would_leave_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = DirDestination::new("depot", dir.path().join("root"));
        for bad in ["../x", "a//b", "", "a/./b"] {
            let err = dest.put_bytes(bad, b"x").unwrap_err();
            assert!(!err.retryable && err.message.starts_with("depot:"), "{bad}: {err}");
        }
    }
}
