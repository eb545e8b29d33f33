//! Subcommands of the `ratls` tool, one file each.

pub(crate) mod quote;
