//! What the steps (and the generator) use on the machine: commands, mounts,
//! loop devices, private files, secrets' life cycle, sd_notify, logging, the disk scan, the
//! hashed copy, the HTTP client, the retry schedule, the wipe's preflight, udev's
//! /dev/disk/by-* names and systemd over D-Bus. No step logic here: `crate::steps` holds the steps.

pub mod cmd;
pub mod disks;
pub mod hashed_copy;
pub mod http;
pub mod identity;
pub mod image_record;
pub mod lock;
pub mod log;
pub mod loopdev;
pub mod mounts;
pub mod notify;
pub mod preflight;
pub mod private;
pub mod retry;
pub mod secrets;
pub mod swarm;
pub mod systemd;
pub mod trust;
pub mod udev;
