//! Subcommands of the `ratls` tool, one file each.
