//! SCIM protocol knowledge: path handling, request classification and error bodies.

pub mod classify;
pub mod error;
pub mod path;

pub use classify::{classify, EndpointClass, Method, Operation, ResourceType, ScimView};
