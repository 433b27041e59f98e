//! Copies a stream into a file while a second thread hashes the same bytes
//! (the SHA-256, and the signature's BLAKE2b beside it when the image is
//! signed),
//! and starts the disk writeback as it goes, so that the final fsync has
//! little left to do. On the initrd's few cores this keeps the download, the
//! page-cache copy, the SHA-256 and the disk busy at the same time instead of
//! one after the other.

use anyhow::{Context, Result};
use minisign_verify::StreamVerifier;
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;

/// Size of one buffer handed from the reader to the hasher.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the reader and the hasher.
const BUFFERS: usize = 4;
/// Writeback is started each time this many bytes have been written.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// What is computed over every byte of the image: its SHA-256 and, for a
/// signed image, the signature's state.
pub struct Hashes<'k> {
    pub sha256: Sha256,
    pub sig: Option<StreamVerifier<'k>>,
}

impl<'k> Hashes<'k> {
    pub fn new(sig: Option<StreamVerifier<'k>>) -> Hashes<'k> {
        Hashes {
            sha256: Sha256::new(),
            sig,
        }
    }

    /// Both digests at once on two cores: each alone keeps up with a fast
    /// network, one after the other would not.
    pub fn update(&mut self, buf: &[u8]) {
        let Hashes { sha256, sig } = self;
        match sig {
            Some(v) => std::thread::scope(|s| {
                s.spawn(|| v.update(buf));
                sha256.update(buf);
            }),
            None => sha256.update(buf),
        }
    }

    /// Feeds a file's bytes (a resumed download's part, an image on disk).
    pub fn feed_file(&mut self, p: &std::path::Path) -> Result<()> {
        let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let (n, err) = fill(&mut f, &mut buf);
            if let Some(e) = err {
                return Err(e).with_context(|| format!("reading {}", p.display()));
            }
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
        }
    }

    pub fn sha256_hex(self) -> (String, Option<StreamVerifier<'k>>) {
        let hex = self
            .sha256
            .finalize()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        (hex, self.sig)
    }
}

/// Reads `src` to its end into `out` (positioned at `offset`, the bytes
/// already in the file and already fed to `hashes`). `progress` is called
/// after each buffer with the file's length so far. Returns the file's
/// length and the hashes fed with every byte of the file.
pub fn copy<'k>(
    src: &mut impl Read,
    out: &mut File,
    hashes: Hashes<'k>,
    offset: u64,
    mut progress: impl FnMut(u64),
) -> Result<(u64, Hashes<'k>)> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let mut hasher = hashes;
            for buf in full_rx {
                hasher.update(&buf);
                // The reader may have stopped; its buffers are then unused.
                let _ = empty_tx.send(buf);
            }
            hasher
        });
        let copied = pump(src, out, offset, &full_tx, &empty_rx, &mut progress);
        // Closing the channel ends the hasher once it has caught up.
        drop(full_tx);
        let hasher = worker
            .join()
            .map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?;
        Ok((copied?, hasher))
    })
}

fn pump(
    src: &mut impl Read,
    out: &mut File,
    offset: u64,
    full: &mpsc::SyncSender<Vec<u8>>,
    empty: &mpsc::Receiver<Vec<u8>>,
    progress: &mut impl FnMut(u64),
) -> Result<u64> {
    let mut made = 0;
    let mut done = offset;
    let mut written_back = offset;
    loop {
        let mut buf = match empty.try_recv() {
            Ok(b) => b,
            Err(_) if made < BUFFERS => {
                made += 1;
                Vec::with_capacity(CHUNK)
            }
            Err(_) => empty.recv().context("the hashing thread stopped")?,
        };
        buf.resize(CHUNK, 0);
        let (n, err) = fill(src, &mut buf);
        buf.truncate(n);
        // What was read before an error is kept: a resume starts after it.
        out.write_all(&buf).context("writing the image")?;
        if let Some(e) = err {
            return Err(e).with_context(|| format!("at byte {}", done + n as u64));
        }
        if n == 0 {
            return Ok(done);
        }
        done += n as u64;
        full.send(buf).context("the hashing thread stopped")?;
        if done - written_back >= WRITEBACK_EVERY {
            start_writeback(out, written_back, done);
            written_back = done;
        }
        progress(done);
    }
}

/// Reads until `buf` is full, the stream ends or a read fails; returns the
/// bytes read and the error, if any.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> (usize, Option<std::io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// Asks the kernel to start writing `[from, to)` to disk without waiting
/// (fadvise DONTNEED starts writeback of dirty pages, and drops the pages
/// that an earlier call already wrote). Only a hint: errors are ignored and
/// the final fsync is what makes the file durable.
fn start_writeback(out: &File, from: u64, to: u64) {
    let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    let _ = posix_fadvise(out, 0, from, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    let _ = posix_fadvise(out, from, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes in odd-sized pieces, then fails.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        fail_at: Option<usize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(std::io::Error::new(ErrorKind::ConnectionReset, "cut"));
            }
            let end = (self.at + 7919)
                .min(self.data.len())
                .min(self.at + buf.len());
            let end = self.fail_at.map_or(end, |f| end.min(f));
            let n = end - self.at;
            buf[..n].copy_from_slice(&self.data[self.at..end]);
            self.at = end;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn copies_and_hashes_every_byte() {
        let (_dir, p) = crate::testing::temp_path("img");
        let d = data(3 * CHUNK + 12345);
        let mut f = File::create(&p).unwrap();
        let mut src = Pieces {
            data: d.clone(),
            at: 0,
            fail_at: None,
        };
        let mut seen = Vec::new();
        let (n, h) = copy(&mut src, &mut f, Hashes::new(None), 0, |x| seen.push(x)).unwrap();
        assert_eq!(n, d.len() as u64);
        assert_eq!(std::fs::read(&p).unwrap(), d);
        assert_eq!(h.sha256.finalize(), Sha256::digest(&d));
        assert_eq!(seen.last(), Some(&(d.len() as u64)));
    }

    #[test]
    fn continues_a_hash_from_an_offset() {
        let (_dir, p) = crate::testing::temp_path("img");
        let d = data(CHUNK + 99);
        let (head, tail) = d.split_at(1000);
        std::fs::write(&p, head).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let mut pre = Hashes::new(None);
        pre.update(head);
        let mut src = Pieces {
            data: tail.to_vec(),
            at: 0,
            fail_at: None,
        };
        let (n, h) = copy(&mut src, &mut f, pre, 1000, |_| {}).unwrap();
        assert_eq!(n, d.len() as u64);
        assert_eq!(h.sha256.finalize(), Sha256::digest(&d));
    }

    #[test]
    fn a_cut_stream_is_an_error_naming_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("img")).unwrap();
        let mut src = Pieces {
            data: data(2 * CHUNK),
            at: 0,
            fail_at: Some(CHUNK + 5),
        };
        let Err(err) = copy(&mut src, &mut f, Hashes::new(None), 0, |_| {}) else {
            panic!("a cut stream copied");
        };
        assert!(format!("{err:#}").contains("at byte 1048581"), "{err:#}");
        // The bytes before the cut are in the file, for a resume.
        assert_eq!(f.metadata().unwrap().len(), (CHUNK + 5) as u64);
    }
}
