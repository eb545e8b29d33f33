//! `ratls completions SHELL` and `ratls man` are generated from the clap definitions and name
//! every subcommand.

mod cli_support;

use cli_support::ratls;

const SUBCOMMANDS: [&str; 13] = [
    "completions",
    "connect",
    "demo",
    "identity",
    "inspect-cert",
    "man",
    "measure",
    "policy",
    "quote",
    "serve",
    "verify-build",
    "verify-quote",
    "help",
];

#[test]
fn completions_for_each_shell_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ratls(dir.path(), &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.all());
        for sub in SUBCOMMANDS {
            assert!(out.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    let out = ratls(dir.path(), &["completions", "tcsh"]);
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn man_page_is_roff_and_lists_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let out = ratls(dir.path(), &["man"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains(".TH ratls 1"), "{}", out.stdout);
    for sub in SUBCOMMANDS {
        assert!(
            out.stdout.contains(&sub.replace('-', "\\-")),
            "man page lacks {sub}"
        );
    }
}
