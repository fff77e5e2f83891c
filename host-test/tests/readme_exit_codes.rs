//! Issue 16: the README said only usage errors exit 2, while host and trap failures exited 2 too;
//! they now exit 3 (src/exit.rs). The README's exit-code table must be the one `exit.rs`
//! documents, code for code.

use std::path::Path;

/// The `| code | meaning |` rows of the first table after `marker` in `text`.
fn codes(text: &str, marker: &str) -> Vec<(u8, String)> {
    let start = text.find(marker).unwrap_or_else(|| panic!("{marker:?} not found"));
    text[start..]
        .lines()
        .map(|line| line.trim_start_matches("//!").trim())
        .skip_while(|line| !line.starts_with("| code"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let word = |s: &str| s.split(':').next().unwrap_or_default().trim().to_owned();
            (cells[0].parse().expect("a numeric code"), word(cells[1]))
        })
        .collect()
}

#[test]
fn the_readme_documents_every_exit_code_including_3_for_internal_failures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let exit_rs = std::fs::read_to_string(root.join("src/exit.rs")).unwrap();
    let documented = codes(&exit_rs, "How a command ends");
    assert_eq!(
        documented.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{documented:?}"
    );
    assert_eq!(codes(&readme, "exits with one of these codes"), documented);
}
