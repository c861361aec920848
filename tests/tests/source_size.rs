//! No source file over 600 lines, tests aside (issue 16): a file that grows past it is split
//! into modules along its seams. Tests are aside: `tests.rs` files, `tests/` folders, and a
//! file's own `#[cfg(test)] mod tests { … }` block at its end.

use std::path::{Path, PathBuf};

/// The longest a source file may be, without its tests.
const MAX_LINES: usize = 600;

/// The crates' source folders (the `tests` crate's harness and the benchmark; its test files
/// are tests).
const SOURCE_ROOTS: &[&str] = &[
    "protocol/src",
    "drivers/src",
    "daemon",
    "simulator/src",
    "tests/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Test folders, fuzz targets and build output are not source.
            if !matches!(name.to_str(), Some("tests" | "fuzz" | "target")) {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// Lines before the file's inline test module, if it has one.
fn lines_without_tests(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].starts_with("mod tests {"))
        .unwrap_or(lines.len())
}

#[test]
fn no_source_file_is_over_600_lines_tests_aside() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for root in SOURCE_ROOTS {
        rust_files(&workspace.join(root), &mut files);
    }
    assert!(files.len() > 100, "found only {} source files", files.len());
    let mut too_long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let n = lines_without_tests(&text);
            let shown = path.strip_prefix(&workspace).unwrap_or(path);
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", shown.display()))
        })
        .collect();
    too_long.sort();
    assert!(
        too_long.is_empty(),
        "over {MAX_LINES} lines without their tests; split them into modules:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn an_inline_test_module_is_not_counted() {
    let text = "fn a() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n";
    assert_eq!(lines_without_tests(text), 2);
    assert_eq!(lines_without_tests("fn a() {}\nfn b() {}\n"), 2);
}
