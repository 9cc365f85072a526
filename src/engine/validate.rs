//! The rules a tar entry must follow to become part of a build: a relative path without `..`,
//! each path once, no entry below a file or a link, and symbolic links that resolve inside the
//! tree (checked after the whole tar is read, since a link may point at a later entry or
//! through other links).

use std::collections::{HashMap, VecDeque};

use super::error::{EngineError, Result};

/// How many links one resolution may follow before it is called a loop (as Linux does).
const MAX_LINK_HOPS: usize = 40;

/// The entry's path as stored in the manifest: `/`-separated, without `.` components or a
/// trailing slash. `None` for the tree's root itself (`./`).
pub fn normalize_path(raw: &[u8]) -> Result<Option<String>> {
    let text = String::from_utf8_lossy(raw);
    let shown = text.to_string();
    let path =
        std::str::from_utf8(raw).map_err(|_| EngineError::file_read_failed(&shown, "UTF-8 path", "non-UTF-8 path"))?;
    if path.starts_with('/') {
        return Err(EngineError::file_read_failed(path, "relative path", "absolute path"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(EngineError::file_read_failed(path, "path inside the tree", "path with '..'")),
            _ if part.contains('\0') => return Err(EngineError::file_read_failed(path, "path", "path with NUL")),
            _ => parts.push(part),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("/")) })
}

/// The directories above `path`, nearest first.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices().rev().filter(|&(_, c)| c == '/').map(move |(i, _)| &path[..i])
}

/// Checks that the link at `link_path` with `target` stays inside the tree, following other
/// links of the tree (`links`: path → target) as the client's filesystem would.
pub fn check_link(link_path: &str, target: &str, links: &HashMap<String, String>) -> Result<()> {
    let escapes =
        || EngineError::file_read_failed(link_path, "symlink inside the tree", format!("symlink to {target}"));
    if target.is_empty() || target.starts_with('/') {
        return Err(escapes());
    }
    let mut dir: Vec<String> = link_path.split('/').map(str::to_string).collect();
    dir.pop();
    let mut todo: VecDeque<String> = target.split('/').map(str::to_string).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if dir.pop().is_none() {
                    return Err(escapes());
                }
            }
            _ => {
                dir.push(part);
                if let Some(next) = links.get(&dir.join("/")) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(EngineError::file_read_failed(
                            link_path,
                            "symlink inside the tree",
                            "symlink loop",
                        ));
                    }
                    if next.starts_with('/') {
                        return Err(escapes());
                    }
                    dir.pop();
                    for p in next.split('/').rev() {
                        todo.push_front(p.to_string());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn paths_lose_dot_components_and_trailing_slashes() {
        assert_eq!(normalize_path(b"./a//b/./c/").unwrap().as_deref(), Some("a/b/c"));
        assert_eq!(normalize_path(b"./").unwrap(), None);
    }

    #[test]
    fn absolute_and_parent_paths_are_refused() {
        assert!(normalize_path(b"/etc/passwd").is_err());
        assert!(normalize_path(b"a/../../b").is_err());
    }

    #[test]
    fn ancestors_run_from_the_nearest_directory_up() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }

    #[test]
    fn links_inside_the_tree_pass_and_escaping_ones_fail() {
        let none = links(&[]);
        assert!(check_link("a/b/l", "../c", &none).is_ok());
        assert!(check_link("a/l", "../../x", &none).is_err());
        assert!(check_link("l", "/etc", &none).is_err());
    }

    #[test]
    fn a_link_escaping_through_another_link_fails() {
        let tree = links(&[("a/up", ".."), ("l", "a/up/..")]);
        assert!(check_link("l", "a/up/..", &tree).is_err());
        let tree = links(&[("x", "y"), ("y", "x")]);
        assert!(check_link("x", "y", &tree).is_err());
    }
}
