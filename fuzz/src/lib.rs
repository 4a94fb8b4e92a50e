//! Shared by the fuzz targets; `checks` is also compiled into `tests/properties.rs`.
pub mod checks;
