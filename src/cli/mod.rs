//! Subcommands of the `ratls` tool, one file each.

pub(crate) mod measure;
pub(crate) mod verify_build;
