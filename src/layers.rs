//! The house's floors: every module of the library, lowest first. A module may import only
//! modules on a lower floor, so there is no import circle and nothing imports upwards. The
//! test below reads `src/` and enforces it; ARCHITECTURE.md draws the same picture.
//!
//! To add a module, put it on the lowest floor above everything it imports.

/// (floor, modules). Floor 1 is pure logic and leaves: no I/O, no other module.
const FLOORS: &[(u8, &[&str])] = &[
    // Helpers of the library's own tests (compiled only for them).
    (0, &["test_support"]),
    // Pure logic and leaves.
    (
        1,
        &[
            "circuit",
            "egress",
            "embedded_pg",
            "locks",
            "mask",
            "metrics",
            "pacing",
            "pattern",
            "readiness",
            "signing",
            "sql",
            "ssrf",
        ],
    ),
    // The state machine's data and one signed HTTP attempt.
    // Portal links (pure, but they check event-type patterns).
    (2, &["delivery", "portal"]),
    // The retry decision (consumes an Outcome); the database plumbing.
    (3, &["retry", "db"]),
    // Typed configuration; the in-memory catalog of endpoints.
    (4, &["config", "catalog"]),
    // What one replica's tasks share.
    (5, &["replica"]),
    // Services that need only the replica.
    (6, &["router", "record", "maintenance", "wakeup"]),
    // A worker makes one attempt and hands its outcome to the recorder; the event log's
    // query layer (reads, and actions that queue deliveries the way routing does); the
    // inbound listener stores verified requests (the admin API manages its sources).
    (7, &["worker", "eventlog", "inbound"]),
    // The claimer spawns workers; the console (pages over the event log).
    (8, &["claim", "console"]),
    // The HTTP listener: the admin API, with the console mounted beside it.
    (9, &["admin"]),
    // Wiring.
    (10, &["engine"]),
    // The demo runs an engine.
    (11, &["demo"]),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::FLOORS;

    fn floor_of(module: &str) -> Option<u8> {
        FLOORS
            .iter()
            .find(|(_, ms)| ms.contains(&module))
            .map(|(f, _)| *f)
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The top-level module a file belongs to (`src/claim/policy.rs` → `claim`).
    fn module_of(src: &Path, file: &Path) -> String {
        let rel = file.strip_prefix(src).expect("under src/");
        let first = rel.components().next().expect("non-empty path");
        let name = first.as_os_str().to_string_lossy();
        name.trim_end_matches(".rs").to_owned()
    }

    /// The modules a piece of code names as `crate::x` or inside `crate::{x, y::z}`
    /// (comments removed first: a doc link is not an import).
    fn imports(code: &str) -> BTreeSet<String> {
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut out = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Names at depth 0 of the group.
                let mut depth = 0;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            out.insert(ident(&group[i..]));
                        }
                        _ => {}
                    }
                }
            } else {
                out.insert(ident(rest));
            }
        }
        out.retain(|m| !m.is_empty());
        out
    }

    #[test]
    fn modules_import_only_lower_floors() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut problems = Vec::new();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let module = module_of(&src, file);
            if module == "lib" || module == "main" || module == "layers" {
                continue;
            }
            let Some(floor) = floor_of(&module) else {
                problems.push(format!("{module} ({}) is on no floor", file.display()));
                continue;
            };
            let code = std::fs::read_to_string(file).expect("read a source file");
            for import in imports(&code) {
                if import == module {
                    continue;
                }
                graph
                    .entry(module.clone())
                    .or_default()
                    .insert(import.clone());
                match floor_of(&import) {
                    Some(f) if f < floor => {}
                    Some(f) => problems.push(format!(
                        "{} (floor {floor}) imports {import} (floor {f})",
                        file.display()
                    )),
                    None => problems.push(format!(
                        "{} imports {import}, which is on no floor",
                        file.display()
                    )),
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // Printed with --nocapture: the import list ARCHITECTURE.md summarises.
        for (module, imports) in &graph {
            let list: Vec<&str> = imports.iter().map(String::as_str).collect();
            println!("{module}: {}", list.join(", "));
        }
    }

    #[test]
    fn imports_are_read_from_code_not_comments() {
        let code = "use crate::{a::B, c, d::{e, f}};\n// crate::g\nlet x = crate::h::i();";
        let got: Vec<String> = imports(code).into_iter().collect();
        assert_eq!(got, ["a", "c", "d", "h"]);
    }
}
