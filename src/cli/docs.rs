//! `ratls completions SHELL` and `ratls man`: generated from the clap definitions, so they never
//! disagree with the tool.

use std::io::Write;
use std::process::ExitCode;

/// Arguments of `ratls completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. For bash:
    /// `ratls completions bash > ~/.local/share/bash-completion/completions/ratls`.
    shell: clap_complete::Shell,
}

/// Prints the completion script of `shell` for `command` on stdout.
pub(crate) fn completions(args: &CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    write_stdout(&script)
}

/// Writes all of `bytes` to stdout; a closed pipe (`| head`) is exit code 1, not a panic.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Prints the man page (roff) of `command` on stdout:
/// `ratls man > ratls.1 && man ./ratls.1`.
pub(crate) fn man(command: clap::Command) -> ExitCode {
    let mut page = Vec::new();
    if let Err(error) = clap_mangen::Man::new(command).render(&mut page) {
        eprintln!("error: rendering the man page: {error}");
        return ExitCode::from(2);
    }
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&page)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
