//! Task exceptions and warnings are read by organization members and sent to webhooks and Slack;
//! where the server keeps its state on the box is not theirs to know. Paths below the state
//! directory are shown relative to it (`builds/1/manifests/0003.json`), which still tells an
//! operator which file failed. The log keeps the whole message.

use std::path::Path;

use serde_json::Value;

/// The spellings of the state directory that messages may start a path with.
pub struct StatePaths {
    /// Each with a trailing `/`, longest first (so a longer spelling is not cut by a shorter).
    prefixes: Vec<String>,
}

impl StatePaths {
    pub fn new(state_dir: &Path) -> Self {
        // Paths are joined to the directory as configured; the canonical spelling catches any
        // that were resolved on the way (a symlinked state directory).
        let mut prefixes: Vec<String> = [Some(state_dir.to_path_buf()), std::fs::canonicalize(state_dir).ok()]
            .into_iter()
            .flatten()
            .map(|dir| format!("{}/", dir.to_string_lossy().trim_end_matches('/')))
            .filter(|prefix| prefix.len() > 1)
            .collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        prefixes.dedup();
        StatePaths { prefixes }
    }

    /// `text` with every path below the state directory made relative to it.
    pub fn relative(&self, text: &str) -> String {
        let mut out = text.to_string();
        for prefix in &self.prefixes {
            out = strip_at_path_starts(&out, prefix);
        }
        out
    }

    /// The same for a task's exception or warning: its `message`, the one free-text field.
    pub fn relative_message(&self, mut value: Value) -> Value {
        if let Some(Value::String(message)) = value.get_mut("message") {
            *message = self.relative(message);
        }
        value
    }
}

/// Removes `prefix` where a path starts with it: at the start of `text` or after a character
/// that cannot be part of a path (so `data/` is not cut out of `metadata/`).
fn strip_at_path_starts(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let starts_path = rest[..at]
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back())
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '~')));
        out.push_str(&rest[..at]);
        if !starts_path {
            out.push_str(prefix);
        }
        rest = &rest[at + prefix.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_below_the_state_directory_become_relative_to_it() {
        let paths = StatePaths::new(Path::new("/var/lib/rockit-edge"));
        assert_eq!(
            paths.relative("open /var/lib/rockit-edge/builds/1/manifests/0003.json: No such file"),
            "open builds/1/manifests/0003.json: No such file"
        );
        assert_eq!(paths.relative("`/var/lib/rockit-edge/depot/x` and (/var/lib/rockit-edge/y)"), "`depot/x` and (y)");
    }

    #[test]
    fn a_relative_state_directory_is_stripped_only_where_a_path_starts() {
        let paths = StatePaths::new(Path::new("data"));
        assert_eq!(
            paths.relative("data/builds/2 and metadata/x and /srv/data/y"),
            "builds/2 and metadata/x and /srv/data/y"
        );
        let dotted = StatePaths::new(Path::new("./rockit-edge-data/"));
        assert_eq!(dotted.relative("read ./rockit-edge-data/builds/1/tar: gone"), "read builds/1/tar: gone");
    }

    #[test]
    fn other_paths_and_fields_are_left_alone() {
        let paths = StatePaths::new(Path::new("/var/lib/rockit-edge"));
        let exception = json!({
            "message": "write /srv/cdn/dxf/a: denied; /var/lib/rockit-edge-old/x; /var/lib/rockit-edge/builds/1",
            "fileReadFailed": {"filename": "/var/lib/rockit-edge/game.exe"},
        });
        let shown = paths.relative_message(exception);
        assert_eq!(shown["message"], "write /srv/cdn/dxf/a: denied; /var/lib/rockit-edge-old/x; builds/1");
        assert_eq!(shown["fileReadFailed"]["filename"], "/var/lib/rockit-edge/game.exe", "a tar entry's own name");
    }
}
