//! The module layers that `src/lib.rs` documents, checked on every test run:
//! each top-level module imports only from its own layer or those below it,
//! the import graph between modules has no cycle, and inside `image` the
//! codecs know nothing of planning, running or HTTP.
//!
//! How: every `crate::…` path in a module's non-test code is an edge (this
//! crate's style is absolute `crate::` paths; `super::` stays inside a
//! module and so cannot cross a layer). A new back-edge fails here with the
//! file that made it.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rank of each top-level module; an import must go to a lower rank or to
/// a module of the same rank that does not import back (no cycle).
const LAYERS: &[(&str, u32)] = &[
    ("metrics", 0),
    ("error", 1),
    ("body", 1),
    ("budget", 1),
    ("context", 1),
    ("service", 1),
    ("headers", 1),
    ("conditional", 1),
    ("upload", 1),
    ("shutdown", 1),
    ("origin", 2),
    ("splice", 2),
    ("encoding", 2),
    ("health", 3),
    ("image", 3),
    ("zip", 4),         // uses image's job machinery
    ("passthrough", 5), // hands mod_zip manifests to zip
    ("admin", 6),
    ("server", 6),
    ("memory_model", 6),
    ("config", 7),
    ("commands", 7),
    ("logging", 7),
    ("fuzzing", 7),
];

/// Inside `image`: codec < plan < run < http.
const IMAGE_LAYERS: &[(&str, u32)] = &[("codec", 0), ("plan", 1), ("run", 2), ("http", 3)];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without its `#[cfg(test)]` items and without comments.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            pending_cfg_test = false;
            let opens = code.matches('{').count() as i32 - code.matches('}').count() as i32;
            if opens > 0 {
                skip_depth = Some(opens);
            }
            // A one-line item (`use …;`, `mod tests;`) is skipped too.
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The path segments after each `crate::` in `code`, including the leaves
/// of `crate::{a::b, c}` groups (only their first segments matter here).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` and identifiers ending in `crate` are not ours.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                out.push(segments(item.trim()));
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty())
        .collect()
}

/// The module a file belongs to, as path segments under `src/`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    file: PathBuf,
}

fn edges() -> Vec<Edge> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = Vec::new();
    for file in files {
        let from = module_of(&file);
        if from.first().is_some_and(|m| m == "lib" || m == "main") {
            continue; // the crate root wires every layer together
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        for to in crate_paths(&code) {
            if !to.is_empty() {
                out.push(Edge {
                    from: from.clone(),
                    to,
                    file: file.clone(),
                });
            }
        }
    }
    out
}

fn rank(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)[0].clone()).collect();
    for m in modules {
        if m == "lib" || m == "main" {
            continue;
        }
        assert!(
            rank(LAYERS, &m).is_some(),
            "src/{m}: give it a layer in tests/layers.rs and src/lib.rs"
        );
    }
}

#[test]
fn imports_go_down_the_layers_only() {
    let mut wrong = Vec::new();
    for e in edges() {
        let (from, to) = (&e.from[0], &e.to[0]);
        if from == to {
            continue;
        }
        // Re-exports at the crate root (`crate::Error`) belong to `error`.
        let Some(to_rank) = rank(LAYERS, to)
            .or_else(|| (to == "Error" || to == "Result" || to == "ErrorKind").then_some(1))
        else {
            continue; // an item of the crate root, such as a macro
        };
        let from_rank = rank(LAYERS, from).expect("checked by every_top_level_module_has_a_layer");
        if to_rank > from_rank {
            wrong.push(format!(
                "{} imports crate::{} (layer {} above {})",
                e.file.display(),
                e.to.join("::"),
                to_rank,
                from_rank
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in edges() {
        let (from, to) = (e.from[0].clone(), e.to[0].clone());
        if from != to && rank(LAYERS, &to).is_some() {
            graph.entry(from).or_default().insert(to);
        }
    }
    // Depth-first search with colours: a grey node seen again is a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        colour.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match colour.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, colour, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(node.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for node in graph.keys() {
        if colour.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, &graph, &mut colour, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn inside_image_codecs_plan_run_and_http_are_layered() {
    let mut wrong = Vec::new();
    for e in edges() {
        if e.from.first().map(String::as_str) != Some("image")
            || e.to.first().map(String::as_str) != Some("image")
        {
            continue;
        }
        let (Some(from), Some(to)) = (e.from.get(1), e.to.get(1)) else {
            continue;
        };
        let (Some(fr), Some(tr)) = (rank(IMAGE_LAYERS, from), rank(IMAGE_LAYERS, to)) else {
            continue;
        };
        if tr > fr {
            wrong.push(format!(
                "{} imports crate::{}",
                e.file.display(),
                e.to.join("::")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "image layers broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_and_ignores_tests() {
    let code = production_code(
        "use crate::{budget::X, zip::{a, b}};\nfn f() { crate::origin::go() } // crate::server\n#[cfg(test)]\nmod tests {\n use crate::server::Y;\n}\n",
    );
    let firsts: BTreeSet<String> = crate_paths(&code)
        .into_iter()
        .map(|p| p[0].clone())
        .collect();
    let expected: BTreeSet<String> = ["budget", "zip", "origin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(firsts, expected);
}
