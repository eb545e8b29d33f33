//! Collateral from Intel PCS v4 or a PCCS-compatible service, a cache that never serves expired
//! collateral, and a PCCS-compatible service of the project's own (feature `pccs`).
//!
//! - [`PlatformKey`]: which collateral a quote needs (FMSPC and PCK CA from its PCK leaf).
//! - [`wire`] and [`check`]: the services' wire format, and the checks fetched collateral
//!   passes before anything keeps it (pure).
//! - [`PcsClient`]: the async client (reqwest, rustls with the crate's ring provider).
//! - [`CollateralCache`]: a [`crate::tdx::CollateralStore`] whose lookups never block nor do
//!   I/O; misses fail closed and schedule a background fetch.
//! - [`server`]: the PCCS-compatible HTTP/1.1 service (`ratls collateral serve`).
//!
//! `docs/collateral.md` writes down the routes, formats and cache rules.

pub mod cache;
pub mod check;
mod client;
mod clock;
mod error;
pub mod files;
mod platform;
pub mod server;
pub mod wire;

pub use cache::{CacheConfig, CacheStats, CachedCollateral, CollateralCache};
pub use client::{
    ClientConfig, FetchedCollateral, ItemDigests, PcsClient, Service, ServiceKind, UpdateType,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{FetchError, StoreError};
pub use platform::{Fmspc, PckCa, PlatformKey, PlatformKeyError};
