//! Entry names: what a manifest asks for, made safe to extract anywhere.
//!
//! [`sanitize`] turns a requested name into a relative `/`-separated path
//! that cannot leave the target folder and that Windows, macOS and Linux can
//! all store. [`Namer`] then de-duplicates names as file managers do
//! (`a.jpg`, `a (1).jpg`), case-insensitively, and also keeps a file from
//! colliding with a folder of the same name.

use std::collections::HashSet;

/// Longest name component most file systems accept, in bytes.
const MAX_COMPONENT: usize = 255;
/// Longest whole name we write (the format allows 65535).
const MAX_NAME: usize = 4096;

/// Make `requested` safe: backslashes become `/`, leading `/`, drive letters
/// and `.`/`..` components are dropped, characters Windows cannot store
/// (`<>:"|?*` and control characters) become `_`, trailing dots and spaces
/// are trimmed, reserved device names (`CON`, `NUL`, `COM1`…) get a `_`
/// prefix. Returns `None` when nothing is left.
pub fn sanitize(requested: &str) -> Option<String> {
    let unified = requested.replace('\\', "/");
    let mut parts: Vec<String> = Vec::new();
    for (i, raw) in unified.split('/').enumerate() {
        if raw.is_empty() || raw == "." || raw == ".." {
            continue;
        }
        // A drive letter ("C:") as the first component.
        if i == 0 && raw.len() == 2 && raw.as_bytes()[0].is_ascii_alphabetic() && raw.ends_with(':')
        {
            continue;
        }
        if let Some(part) = sanitize_component(raw) {
            parts.push(part);
        }
    }
    let mut name = parts.join("/");
    if name.is_empty() {
        return None;
    }
    if name.len() > MAX_NAME {
        name.truncate(floor_char_boundary(&name, MAX_NAME));
        name = name.trim_end_matches('/').to_string();
    }
    Some(name)
}

fn sanitize_component(raw: &str) -> Option<String> {
    let mut s: String = raw
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = s.trim_end_matches(['.', ' ']).len();
    s.truncate(trimmed);
    if s.is_empty() || s.chars().all(|c| c == '.') {
        return None;
    }
    if is_reserved_device(&s) {
        s.insert(0, '_');
    }
    if s.len() > MAX_COMPONENT {
        let (stem, ext) = split_ext(&s);
        let keep = MAX_COMPONENT.saturating_sub(ext.len());
        s = format!("{}{}", &stem[..floor_char_boundary(stem, keep)], ext);
    }
    Some(s)
}

fn is_reserved_device(s: &str) -> bool {
    let stem = s
        .split('.')
        .next()
        .unwrap_or(s)
        .trim_end()
        .to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `("photo", ".jpg")`; a leading dot is part of the stem (`.profile`).
fn split_ext(s: &str) -> (&str, &str) {
    match s.rfind('.') {
        Some(i) if i > 0 => (&s[..i], &s[i..]),
        _ => (s, ""),
    }
}

/// The file name part of a source path (`2024/a.jpg` -> `a.jpg`).
pub fn file_name_of(source: &str) -> &str {
    let path = source.trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path)
}

/// Hands out unique names within one archive.
#[derive(Default)]
pub struct Namer {
    /// Lower-cased names of files written.
    files: HashSet<String>,
    /// Lower-cased folder prefixes implied by those files.
    dirs: HashSet<String>,
}

impl Namer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A name not used yet, derived from a sanitised `name`.
    pub fn unique(&mut self, name: &str) -> String {
        let mut parts: Vec<String> = name.split('/').map(str::to_string).collect();
        // A folder that is already a file: rename that folder component.
        for i in 0..parts.len().saturating_sub(1) {
            let prefix = parts[..=i].join("/").to_lowercase();
            if self.files.contains(&prefix) {
                let mut n = 1;
                loop {
                    let candidate = format!("{} ({n})", parts[i]);
                    let mut trial = parts[..i].to_vec();
                    trial.push(candidate.clone());
                    if !self.files.contains(&trial.join("/").to_lowercase()) {
                        parts[i] = candidate;
                        break;
                    }
                    n += 1;
                }
            }
        }
        let last = parts.len() - 1;
        let dir = parts[..last].join("/");
        let (stem, ext) = split_ext(&parts[last]);
        let (stem, ext) = (stem.to_string(), ext.to_string());
        let mut candidate = parts.join("/");
        let mut n = 1;
        while self.taken(&candidate) {
            let file = format!("{stem} ({n}){ext}");
            candidate = if dir.is_empty() {
                file
            } else {
                format!("{dir}/{file}")
            };
            n += 1;
        }
        let key = candidate.to_lowercase();
        let mut prefix = String::new();
        for part in key.split('/').take(last) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.dirs.insert(prefix.clone());
        }
        self.files.insert(key);
        candidate
    }

    fn taken(&self, name: &str) -> bool {
        let key = name.to_lowercase();
        self.files.contains(&key) || self.dirs.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_made_relative_and_storable() {
        assert_eq!(sanitize("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(sanitize("../../x.jpg").as_deref(), Some("x.jpg"));
        assert_eq!(sanitize("a/../../b/./c.jpg").as_deref(), Some("a/b/c.jpg"));
        assert_eq!(
            sanitize("C:\\Windows\\evil.dll").as_deref(),
            Some("Windows/evil.dll")
        );
        assert_eq!(
            sanitize("\\\\server\\share\\x").as_deref(),
            Some("server/share/x")
        );
        assert_eq!(
            sanitize("what?<is>:this\"|*.jpg").as_deref(),
            Some("what__is__this___.jpg")
        );
        assert_eq!(
            sanitize("tab\there\u{7}.txt").as_deref(),
            Some("tab_here_.txt")
        );
        assert_eq!(sanitize("trailing. . ").as_deref(), Some("trailing"));
        assert_eq!(sanitize("CON.txt").as_deref(), Some("_CON.txt"));
        assert_eq!(sanitize("dir/com1").as_deref(), Some("dir/_com1"));
        assert_eq!(sanitize("console.txt").as_deref(), Some("console.txt"));
        assert_eq!(sanitize("../.."), None);
        assert_eq!(sanitize(""), None);
        assert_eq!(sanitize("...").as_deref(), None);
        assert_eq!(sanitize("фото/日本.jpg").as_deref(), Some("фото/日本.jpg"));
    }

    #[test]
    fn long_components_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.jpg", "é".repeat(300));
        let s = sanitize(&long).unwrap();
        assert!(s.len() <= MAX_COMPONENT);
        assert!(s.ends_with(".jpg"));
    }

    #[test]
    fn collisions_get_numbered_case_insensitively() {
        let mut n = Namer::new();
        assert_eq!(n.unique("a.jpg"), "a.jpg");
        assert_eq!(n.unique("a.jpg"), "a (1).jpg");
        assert_eq!(n.unique("A.JPG"), "A (2).JPG");
        assert_eq!(n.unique("a (1).jpg"), "a (1) (1).jpg");
        assert_eq!(n.unique("d/.profile"), "d/.profile");
        assert_eq!(n.unique("d/.profile"), "d/.profile (1)");
        assert_eq!(n.unique("noext"), "noext");
        assert_eq!(n.unique("noext"), "noext (1)");
    }

    #[test]
    fn files_and_folders_do_not_collide() {
        let mut n = Namer::new();
        assert_eq!(n.unique("x/y.jpg"), "x/y.jpg");
        // A file named like an existing folder.
        assert_eq!(n.unique("x"), "x (1)");
        assert_eq!(n.unique("f"), "f");
        // A folder named like an existing file.
        assert_eq!(n.unique("f/g.jpg"), "f (1)/g.jpg");
        assert_eq!(n.unique("f/h.jpg"), "f (1)/h.jpg");
    }

    #[test]
    fn file_names_of_sources() {
        assert_eq!(file_name_of("2024/a.jpg"), "a.jpg");
        assert_eq!(file_name_of("/b.png/"), "b.png");
        assert_eq!(file_name_of("c"), "c");
    }
}
