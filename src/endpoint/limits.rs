//! What a peer may open and buffer before its bond formed, and after.
//!
//! Until the bond proof passed, the peer is authenticated by its certificate only. Each side then
//! lets it open no bidirectional stream and one unidirectional stream at a time (the bond
//! proof's), and holds at most [`PRE_BOND_RECEIVE_WINDOW`] bytes of its stream data unread
//! (QUIC connection flow control, `initial_max_data`); quinn's defaults would let it open 100 + 100
//! streams of 1.25 MB each. Once the bond formed, the limits are raised to quinn's defaults.

use std::sync::Arc;

use quinn::VarInt;

use super::alpn::KEEP_ALIVE;
use crate::tls::MAX_BOND_MESSAGE_LEN;

/// Bidirectional streams the peer may have open before its bond formed: none.
pub const PRE_BOND_BIDI_STREAMS: u32 = 0;

/// Unidirectional streams the peer may have open at once before its bond formed: its bond proof.
pub const PRE_BOND_UNI_STREAMS: u32 = 1;

/// Bytes of stream data the peer may send beyond what this side has read, before its bond
/// formed (16 KiB: a bond message is at most `MAX_BOND_MESSAGE_LEN` bytes).
pub const PRE_BOND_RECEIVE_WINDOW: u32 = 16 * 1024;

/// Streams of each direction the peer may have open at once after the bond (quinn's default).
pub const BONDED_STREAMS: u32 = 100;

const _: () = assert!(MAX_BOND_MESSAGE_LEN <= PRE_BOND_RECEIVE_WINDOW as usize);

/// The transport configuration a connection starts with; `keep_alive` for routed connections.
pub(crate) fn before_bond(keep_alive: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(PRE_BOND_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(PRE_BOND_UNI_STREAMS))
        .receive_window(VarInt::from_u32(PRE_BOND_RECEIVE_WINDOW));
    if keep_alive {
        transport.keep_alive_interval(Some(KEEP_ALIVE));
    }
    Arc::new(transport)
}

/// Raises the peer's limits once its bond formed: streams and connection window as quinn's
/// defaults (the per-stream window stays quinn's default, 1.25 MB).
pub(crate) fn after_bond(conn: &quinn::Connection) {
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(BONDED_STREAMS));
    conn.set_max_concurrent_uni_streams(VarInt::from_u32(BONDED_STREAMS));
    conn.set_receive_window(VarInt::MAX);
}
