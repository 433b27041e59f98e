//! The step programs run by the generated units, one module per step.

pub mod blockstack;
pub mod cmd;
pub mod disks;
pub mod fail;
pub mod fetch;
pub mod handover;
pub mod hashed_copy;
pub mod iscsi;
pub mod layout;
pub mod log;
pub mod loopdev;
pub mod mounts;
pub mod notify;
pub mod plan;
pub mod private;
pub mod status;
pub mod sysroot;
pub mod trap;
pub mod wipe;
