//! `ratls identity`: create or show an identity key file.
//!
//! Exit codes: 0 shown (created if missing); 2 the file cannot be read or written.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `ratls identity`.
#[derive(Debug, clap::Args)]
pub(crate) struct IdentityArgs {
    /// Identity key file (PKCS#8 PEM); created with mode 0600 if missing.
    file: PathBuf,
}

/// Prints the PeerId and the Software allow-list digest of the key in `file`.
pub(crate) fn run(args: &IdentityArgs) -> ExitCode {
    let mut notes = Vec::new();
    let identity = match super::node::load_or_create_identity(&args.file, &mut notes) {
        Ok(identity) => identity,
        Err(error) => return super::input_error(&error),
    };
    for note in notes {
        println!("{note}");
    }
    println!("peer id       {}", identity.peer_id());
    println!(
        "sw digest     {} (put it in a peer's [software] allow list)",
        hex::encode(identity.attestation_digest())
    );
    ExitCode::SUCCESS
}
