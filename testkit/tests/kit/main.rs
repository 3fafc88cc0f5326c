//! The test kit's own tests: it must do what it says, or every test built on it proves nothing.
//! One test binary (one link step), a module per part of the kit.

mod db;
mod receiver;
mod sidecar;
