use core::fmt;

/// Length of one TDX measurement register (SHA-384).
pub const MEASUREMENT_LEN: usize = 48;

/// The 64 bytes a TD chooses to put in its report: the only place where a quote can bind to
/// something outside the TD.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportData(pub [u8; 64]);

impl ReportData {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportData({})", hex::encode(self.0))
    }
}

/// The registers of a TD report that describe what runs inside the TD.
///
/// These are the values a [`crate::policy::MeasurementPolicy`] pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurements {
    /// MRTD: the initial contents of the TD (firmware), measured by the TDX module.
    pub mr_td: [u8; MEASUREMENT_LEN],
    /// RTMR0..RTMR3: run-time extendable registers (firmware config, kernel, command line, app).
    pub rtmr: [[u8; MEASUREMENT_LEN]; 4],
    /// MRCONFIGID: software-defined configuration ID set by the host at TD creation.
    pub mr_config_id: [u8; MEASUREMENT_LEN],
    /// MROWNER: software-defined owner ID.
    pub mr_owner: [u8; MEASUREMENT_LEN],
    /// MROWNERCONFIG: software-defined owner configuration.
    pub mr_owner_config: [u8; MEASUREMENT_LEN],
    /// XFAM: the extended CPU features the TD may use.
    pub xfam: [u8; 8],
    /// TD attributes (bit 0 is DEBUG).
    pub td_attributes: [u8; 8],
}

impl Measurements {
    /// All registers zero and no attributes set.
    pub const ZERO: Self = Self {
        mr_td: [0; MEASUREMENT_LEN],
        rtmr: [[0; MEASUREMENT_LEN]; 4],
        mr_config_id: [0; MEASUREMENT_LEN],
        mr_owner: [0; MEASUREMENT_LEN],
        mr_owner_config: [0; MEASUREMENT_LEN],
        xfam: [0; 8],
        td_attributes: [0; 8],
    };

    /// Whether the TD attributes mark a debug TD (DEBUG, bit 0: its memory and state are readable
    /// by the host) or a TD whose performance can be profiled by the host (bits 4 to 6 of the TUD
    /// byte, which Intel's verification treats like debug).
    pub fn is_debug(&self) -> bool {
        self.td_attributes[0] & 0x71 != 0
    }
}

impl fmt::Debug for Measurements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Measurements")
            .field("mr_td", &hex::encode(self.mr_td))
            .field("rtmr0", &hex::encode(self.rtmr[0]))
            .field("rtmr1", &hex::encode(self.rtmr[1]))
            .field("rtmr2", &hex::encode(self.rtmr[2]))
            .field("rtmr3", &hex::encode(self.rtmr[3]))
            .field("mr_config_id", &hex::encode(self.mr_config_id))
            .field("mr_owner", &hex::encode(self.mr_owner))
            .field("mr_owner_config", &hex::encode(self.mr_owner_config))
            .field("xfam", &hex::encode(self.xfam))
            .field("td_attributes", &hex::encode(self.td_attributes))
            .finish()
    }
}
