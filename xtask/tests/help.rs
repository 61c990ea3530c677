//! `cargo xtask --help` answers on stdout and exits 0; a mistake exits 2.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().unwrap()
}

#[test]
fn help_is_an_answer_and_names_every_command() {
    for args in [&["--help"][..], &["-h"], &["help"], &["load", "--help"], &["infra", "-h"]] {
        let output = xtask(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.starts_with("Usage: cargo xtask <COMMAND>"), "{args:?}: {help}");
        for command in ["test", "install", "tidy", "deny", "deploy", "infra", "bench", "load", "faults", "fuzz"] {
            assert!(help.contains(&format!("\n  {command}")), "{args:?} names {command}: {help}");
        }
    }
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    for args in [&[][..], &["tset"], &["infra", "sideways"]] {
        let output = xtask(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let error = String::from_utf8(output.stderr).unwrap();
        assert!(error.contains("Usage: cargo xtask <COMMAND>"), "{args:?}: {error}");
    }
}
