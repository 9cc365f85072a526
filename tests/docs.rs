//! The README is the operator's manual: it must list what the binary really accepts.

use rockit_edge::config::SETTINGS;

const README: &str = include_str!("../README.md");

#[test]
fn the_readme_settings_table_lists_every_setting() {
    for setting in SETTINGS {
        let row = format!("| `{}` |", setting.key);
        assert!(README.contains(&row), "README.md has no row for `{}`", setting.key);
    }
}

#[test]
fn the_readme_opens_with_the_two_commands() {
    let first_block = README.split("```").nth(1).expect("a code block");
    assert!(first_block.contains("serve"), "first command starts the server");
    // Line 0 is the block's language tag, line 1 the server command.
    let test_command =
        first_block.lines().nth(2).and_then(|l| l.split('#').next()).map(str::trim).expect("a second command");
    assert_eq!(test_command, "bash scripts/test", "second command runs the whole test suite");
    let ci = include_str!("../.ci/run");
    assert!(ci.lines().any(|l| l.trim() == test_command), ".ci/run runs the README's test command");
    let script = include_str!("../scripts/test");
    assert!(script.lines().any(|l| l.trim().starts_with("cargo test")), "the test command runs cargo test");
}
