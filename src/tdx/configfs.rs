//! Quote generation through the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report`).

/// Quote provider backed by configfs-tsm on a TDX guest.
#[derive(Debug)]
pub struct ConfigfsTsm;
