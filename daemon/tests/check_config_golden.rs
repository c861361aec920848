//! `vigil check-config` on a configuration with a problem in every section prints exactly what it
//! printed before the configuration became typed serde structs (`data/check-config/*.expected`
//! was written by the earlier validator): every message word for word, in the same order.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/check-config");

#[test]
fn every_problem_is_printed_as_before() {
    // Run in a folder of its own so that the relative paths in the messages are the same
    // everywhere (and the storage folder, ".", exists).
    let dir = std::env::temp_dir().join(format!("vigil-check-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(Path::new(DATA).join("broken.toml"), dir.join("broken.toml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", "broken.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let expected = std::fs::read_to_string(Path::new(DATA).join("broken.expected")).unwrap();
    let printed = String::from_utf8(out.stderr).unwrap();
    assert_eq!(printed, expected);
}
