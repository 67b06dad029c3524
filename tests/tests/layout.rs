//! Source layout rules that no compiler checks.
//!
//! No file-level import cycles: in every crate, the graph whose nodes are source files (modules)
//! and whose edges are `crate::…`, `super::…` and `self::…` paths from one module to another
//! must have no cycle. A module's references to its own ancestors or descendants (a parent
//! re-exporting its child, a child using its parent's private helpers) are structure, not
//! edges. Two files that need each other share something that belongs in a third module named
//! for what it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` → `[a, b]`; `a/mod.rs` → `[a]`; `lib.rs` and `main.rs` → `[]`.
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments, string and char literals (their text is not code).
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let word_start = i == 0 || !is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && word_start && matches!(next, Some('#' | '"')) {
            // Raw string: r"…", r#"…"#, …
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += hashes + 2;
            while i < chars.len()
                && !(chars[i] == '"'
                    && chars[i + 1..].iter().take(hashes).all(|&c| c == '#')
                    && chars.len() >= i + 1 + hashes)
            {
                i += 1;
            }
            i += 1 + hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // Escaped char literal: '\n', '\'', '\u{1f}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // Plain char literal ('"', 'x'); a lifetime ('a) has no closing quote there.
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `crate`, `super` or `self`, as segments; `use` groups
/// (`crate::a::{b::C, d}`) are expanded one level per brace.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        if !starts_word || !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && is_ident(bytes[j]) {
            j += 1;
        }
        let word: String = bytes[i..j].iter().collect();
        if !matches!(word.as_str(), "crate" | "super" | "self") {
            i = j;
            continue;
        }
        let (segments, end) = path_from(&bytes, i);
        out.extend(segments);
        i = end.max(j);
    }
    out
}

/// The path(s) starting at `start`: one, or one per item of a trailing `{…}` group.
fn path_from(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let mut j = i;
        while j < chars.len() && is_ident(chars[j]) {
            j += 1;
        }
        segments.push(chars[i..j].iter().collect::<String>());
        if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            match chars.get(j + 2) {
                Some('{') => {
                    let (items, end) = group(chars, j + 3);
                    let expanded = items
                        .into_iter()
                        .map(|item| segments.iter().cloned().chain(item).collect())
                        .collect();
                    return (expanded, end);
                }
                Some(c) if is_ident(*c) => i = j + 2,
                _ => return (vec![segments], j),
            }
        } else {
            return (vec![segments], j);
        }
    }
}

/// The items of a `{…}` group starting after its `{`, each as its leading path segments.
fn group(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut items = Vec::new();
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '}' => return (items, i + 1),
            c if is_ident(c) => {
                let (paths, end) = path_from(chars, i);
                items.extend(paths);
                i = end;
            }
            _ => i += 1,
        }
    }
    (items, i)
}

/// The module a path names: its longest prefix that is a file of the crate.
fn resolve(from: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("super" | "self") => {
            base = from.clone();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let full: Module = base.into_iter().chain(rest.iter().cloned()).collect();
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains(m))
}

fn is_prefix(a: &Module, b: &Module) -> bool {
    a.len() <= b.len() && b[..a.len()] == a[..]
}

/// The file-level import graph of the crate rooted at `src` (`bin/` targets left out).
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let files: Vec<(Module, String)> = files
        .into_iter()
        .filter_map(|f| {
            let relative = f.strip_prefix(src).ok()?.to_path_buf();
            if relative.starts_with("bin") {
                return None;
            }
            let text = std::fs::read_to_string(&f).ok()?;
            Some((module_of(&relative), code_only(&text)))
        })
        .collect();
    let modules: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, code) in &files {
        for path in paths(code) {
            let Some(to) = resolve(from, &path, &modules) else {
                continue;
            };
            if !is_prefix(&to, from) && !is_prefix(from, &to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// One cycle of `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

fn show(cycle: &[Module]) -> String {
    cycle
        .iter()
        .map(|m| {
            if m.is_empty() {
                "crate".to_owned()
            } else {
                m.join("::")
            }
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[test]
fn no_file_level_import_cycles() {
    let mut roots = vec![workspace().join("tests/src")];
    let crates = std::fs::read_dir(workspace().join("crates")).expect("crates/ is readable");
    for entry in crates.flatten() {
        roots.push(entry.path().join("src"));
    }
    roots.sort();
    let mut checked = 0;
    let mut cycles = Vec::new();
    for src in roots.iter().filter(|p| p.is_dir()) {
        checked += 1;
        if let Some(cycle) = find_cycle(&graph(src)) {
            cycles.push(format!("{}: {}", src.display(), show(&cycle)));
        }
    }
    assert!(checked >= 7, "found only {checked} crates to check");
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The checker finds the cycles it is there for: a direct `use`, a grouped `use`, a `super::`
/// path and an inline `crate::` path each close one.
#[test]
fn the_cycle_checker_can_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    let write = |name: &str, text: &str| {
        let path = src.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod a; mod b; mod c; mod d; pub use a::A;");
    write(
        "a.rs",
        "use crate::{x::Y, b::{B, other}};\n// crate::d::Nothing in a comment\n",
    );
    write("b.rs", "pub(crate) fn f() { super::c::g(); }");
    write("c.rs", "fn g() -> u8 { crate::a::h() }");
    write(
        "d.rs",
        "const S: &str = \"crate::a::A\"; const Q: char = '\"'; fn r() -> u8 { b'\\'' }\n\
         const R: &str = r#\"crate::a \" crate::a\"#; /* crate::a::A */",
    );
    let edges = graph(src);
    assert_eq!(
        find_cycle(&edges).map(|c| show(&c)).as_deref(),
        Some("a -> b -> c -> a")
    );
    // Paths in comments, strings, raw strings and after char literals are not references.
    assert_eq!(edges.get(&vec!["d".to_owned()]), None, "{edges:?}");

    // Parent and child referring to each other is structure, not a cycle.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("p")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod p;").expect("write");
    std::fs::write(src.join("p.rs"), "mod q; pub use q::Q; fn helper() {}").expect("write");
    std::fs::write(
        src.join("p/q.rs"),
        "use super::helper; use crate::p::helper as h;",
    )
    .expect("write");
    assert_eq!(find_cycle(&graph(src)), None);
}
