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
    /// Print one JSON object: `file`, `created`, `peer_id`, `sw_digest`.
    #[arg(long)]
    json: bool,
}

/// Prints the PeerId and the Software allow-list digest of the key in `file`, each with where it
/// goes.
pub(crate) fn run(args: &IdentityArgs) -> ExitCode {
    let existed = args.file.exists();
    let mut notes = Vec::new();
    let identity = match super::node::load_or_create_identity(&args.file, &mut notes) {
        Ok(identity) => identity,
        Err(error) => return super::input_error(&error),
    };
    let peer_id = identity.peer_id().to_string();
    let digest = hex::encode(identity.attestation_digest());
    if args.json {
        let line = serde_json::json!({
            "file": args.file.display().to_string(),
            "created": !existed,
            "peer_id": peer_id,
            "sw_digest": digest,
        });
        println!("{line}");
        return ExitCode::SUCCESS;
    }
    for note in notes {
        println!("{note}");
    }
    println!("peer id       {peer_id}");
    println!("  goes into a peer's `ratls connect --expect {peer_id}`");
    println!("sw digest     {digest}");
    println!("  goes into a peer's policy file, to admit this key at level Software:");
    println!("  [software]");
    println!("  allow = [\"{digest}\"]");
    ExitCode::SUCCESS
}
