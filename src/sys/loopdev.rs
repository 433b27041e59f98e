//! Loop devices through the kernel's loop-control interface, as losetup
//! does it: ask /dev/loop-control for a free device, then bind the file to it
//! in one LOOP_CONFIGURE call (Linux 5.8+), or with LOOP_SET_FD and
//! LOOP_SET_STATUS64 on older kernels. The ioctls are the only unsafe code
//! in metalroot; they pass plain `repr(C)` structs that live on the stack.
#![allow(unsafe_code)]

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const LOOP_CONTROL: &str = "/dev/loop-control";
const LOOP_CTL_GET_FREE: u32 = 0x4C82;
const LOOP_SET_FD: u32 = 0x4C00;
const LOOP_CLR_FD: u32 = 0x4C01;
const LOOP_SET_STATUS64: u32 = 0x4C04;
const LOOP_CONFIGURE: u32 = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;

/// `struct loop_info64` of <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of <linux/loop.h>.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

nix::ioctl_none_bad!(ctl_get_free, LOOP_CTL_GET_FREE);
nix::ioctl_write_ptr_bad!(configure, LOOP_CONFIGURE, LoopConfig);
nix::ioctl_write_int_bad!(set_fd, LOOP_SET_FD);
nix::ioctl_none_bad!(clr_fd, LOOP_CLR_FD);
nix::ioctl_write_ptr_bad!(set_status64, LOOP_SET_STATUS64, LoopInfo64);

fn info(file: &Path, read_only: bool) -> LoopInfo64 {
    let mut file_name = [0u8; 64];
    let name = file.as_os_str().as_encoded_bytes();
    // The kernel shows this name (losetup -l); it must end in a NUL.
    let n = name.len().min(63);
    file_name[..n].copy_from_slice(&name[..n]);
    LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset: 0,
        sizelimit: 0,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: if read_only { LO_FLAGS_READ_ONLY } else { 0 },
        file_name,
        crypt_name: [0; 64],
        encrypt_key: [0; 32],
        init: [0; 2],
    }
}

/// Binds `file` to a free loop device and returns its path (/dev/loopN).
pub fn attach(file: &Path, read_only: bool) -> Result<String> {
    let backing = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    if !Path::new(LOOP_CONTROL).exists() {
        // Without kmod's static nodes, the node comes with the module.
        crate::sys::cmd::run_ok(&["modprobe", "loop"]);
    }
    let ctl = open_node(LOOP_CONTROL, false)?;
    // Another process may take the free device first: ask again.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { ctl_get_free(ctl.as_raw_fd()) }
            .with_context(|| format!("{LOOP_CONTROL}: no free loop device"))?;
        let path = format!("/dev/loop{n}");
        let dev = open_node(&path, read_only)?;
        match bind(&dev, &backing, file, read_only) {
            Ok(()) => {
                tracing::debug!("{} is on {path}", file.display());
                return Ok(path);
            }
            Err(Errno::EBUSY) => continue,
            Err(e) => bail!("binding {} to {path}: {e}", file.display()),
        }
    }
    bail!(
        "binding {}: every free loop device was taken",
        file.display()
    )
}

/// A device node appears when devtmpfs has made it, right after the
/// loop-control call (or the module's load).
fn open_node(path: &str, read_only: bool) -> Result<File> {
    let start = Instant::now();
    loop {
        match OpenOptions::new().read(true).write(!read_only).open(path) {
            Ok(f) => return Ok(f),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && start.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {path}")),
        }
    }
}

fn bind(dev: &File, backing: &File, file: &Path, read_only: bool) -> nix::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    let cfg = LoopConfig {
        fd,
        block_size: 0,
        info: info(file, read_only),
        reserved: [0; 8],
    };
    // SAFETY: `cfg` is a valid loop_config that outlives the call, and both
    // descriptors are open.
    match unsafe { configure(dev.as_raw_fd(), &cfg) } {
        Ok(_) => Ok(()),
        // Before Linux 5.8: the two-step way.
        Err(Errno::EINVAL | Errno::ENOTTY) => {
            // SAFETY: LOOP_SET_FD takes the backing descriptor as its argument.
            unsafe { set_fd(dev.as_raw_fd(), backing.as_raw_fd()) }?;
            // SAFETY: as above, `cfg.info` outlives the call.
            if let Err(e) = unsafe { set_status64(dev.as_raw_fd(), &cfg.info) } {
                // SAFETY: LOOP_CLR_FD takes no argument.
                let _ = unsafe { clr_fd(dev.as_raw_fd()) };
                return Err(e);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernels_layout() {
        // sizeof(struct loop_info64) and sizeof(struct loop_config).
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn the_name_is_cut_and_nul_terminated() {
        let long = "/".repeat(100);
        let i = info(Path::new(&long), true);
        assert_eq!(i.file_name[62], b'/');
        assert_eq!(i.file_name[63], 0);
        assert_eq!(i.flags, LO_FLAGS_READ_ONLY);
        assert_eq!(info(Path::new("/x"), false).flags, 0);
    }

    /// Binds a file for real where the machine allows it (root, loop
    /// support); skipped elsewhere.
    #[test]
    fn attaches_a_file_when_loop_devices_exist() {
        if !Path::new(LOOP_CONTROL).exists() || !nix::unistd::geteuid().is_root() {
            return;
        }
        let (_d, f) = crate::testing::temp_path("img");
        std::fs::write(&f, vec![7u8; 1 << 20]).unwrap();
        let Ok(dev) = attach(&f, true) else {
            return; // a container may refuse loop devices
        };
        let name = dev.trim_start_matches("/dev/");
        let backing =
            std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).unwrap();
        assert_eq!(backing.trim(), f.to_string_lossy());
        let ro = std::fs::read_to_string(format!("/sys/block/{name}/ro")).unwrap();
        assert_eq!(ro.trim(), "1");
        let dev = OpenOptions::new().read(true).open(&dev).unwrap();
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { clr_fd(dev.as_raw_fd()) }.unwrap();
    }
}
