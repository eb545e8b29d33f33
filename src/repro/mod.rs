//! The rebuild check (shell: reads files, runs the declared build): recipe digest (blake3),
//! rebuild, measurement of the output with [`crate::measure`], comparison with the declared
//! values. A passing check yields the [`crate::measure::RebuiltMeasurements`] that pin a policy
//! at level `TdxPlusReproducibleBuild`.

mod build_policy;
mod recipe;

pub use build_policy::{BootPolicy, BuildPolicy, PolicyError, RecipeLocation};
pub use recipe::{
    verify_build, BuildVerdict, FetchUrl, Step, VerifyBuildError, MAX_IMAGE_LEN, MAX_RECIPE_LEN,
};
