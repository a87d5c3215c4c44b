//! The fuzz targets' shared code: [`properties`] is also compiled into the stable randomized
//! test (`tests/fuzz_stable.rs`), so both check the same things.

pub mod properties;
