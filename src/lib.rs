//! metalroot: prepares a server's root filesystem from inside a systemd initrd.
//!
//! The pure core is `cmdline → params → plan → units`; `generator` writes its
//! output, and `steps` are the ExecStart programs of the units.

pub mod args;
pub mod cli;
pub mod cmdline;
pub mod core;
pub mod error;
pub mod generator;
pub mod iscsi_spec;
pub mod kinds;
pub mod params;
pub mod plan;
pub mod redact;
pub mod render;
pub mod site;
pub mod steps;
pub mod sys;
#[cfg(test)]
mod testing;
pub mod units;
pub mod values;
