//! `ratls completions SHELL` and `ratls man` are generated from the clap definitions and name
//! every subcommand.

mod cli_support;

use cli_support::ratls;

const SUBCOMMANDS: [&str; 14] = [
    "collateral",
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

#[test]
fn a_closed_stdout_ends_the_tool_quietly() {
    // The reader closes its end at once; println! then fails, which would be a panic message.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/vectors/v4_tdx10_phala_uptodate"
    );
    let script = format!(
        "'{}' verify-quote --quote {dir}/quote.bin --collateral {dir}/collateral.json \
         --now 1750377600 | (exec 0<&-; sleep 1); echo \"status ${{PIPESTATUS[0]}}\"",
        cli_support::RATLS
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("status 141"), "{stdout} {stderr}");
}
