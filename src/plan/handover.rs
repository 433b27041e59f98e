//! The hand-over to the real root, then the optional trap shell.

use super::{s, Step};
use crate::args::SYSROOT;
use crate::cli::Cmd;
use crate::cli::HandoverArgs;
use crate::params::Config;
use std::path::PathBuf;

pub fn plan(c: &Config, paves: bool, iscsi: bool, sysroot: bool) -> Vec<Step> {
    let mut st = Step::new(
        "metalroot-handover",
        s("metalroot: hand the assembled system over to the real root"),
        Cmd::Handover(HandoverArgs {
            root: PathBuf::from(SYSROOT),
            metal_arrays: paves,
            iscsi,
            multipath: c.multipath,
            seed: c.fetch.torrent.torrent.is_some() && c.fetch.torrent.torrent_seed > 0,
        }),
    );
    st.wants.push(s("initrd-root-fs.target"));
    if sysroot {
        st.requires.push(s("metalroot-sysroot.service"));
    }
    st.wants.push(s("initrd-fs.target"));
    st.before.push(s("initrd.target"));
    st.wanted_by.push(s("initrd.target"));
    let mut steps = vec![st];
    if c.trap {
        let mut st = Step::new(
            "metalroot-trap",
            s("metalroot: trap shell before switch-root (metal.trap=1)"),
            Cmd::Trap,
        );
        st.interactive = true;
        st.wants.push(s("metalroot-handover.service"));
        st.before.push(s("initrd.target"));
        st.wanted_by.push(s("initrd.target"));
        steps.push(st);
    }
    steps
}
