//! The step programs run by the generated units, one module per step;
//! what they share with each other and the generator is in `crate::sys`.

pub mod blockstack;
pub mod fail;
pub mod fetch;
pub mod handover;
pub mod iscsi;
pub mod layout;
pub mod measure;
pub mod network;
pub mod plan;
pub mod status;
pub mod sysroot;
pub mod trap;
pub mod wipe;
