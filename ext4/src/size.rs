//! Choosing the filesystem size: fixed, or the smallest that fits plus headroom.

use crate::error::Error;
use crate::journal::{MIN_JOURNAL_FS_BLOCKS, default_journal_blocks, journal_size_steps};
use crate::layout::{Geometry, GeometryError, Layout, inode_ratio_steps, max_blocks};
use crate::options::{InodeSpec, Options};
use crate::plan::{AllocError, Placed, Scan, allocate};

/// A geometry with everything placed.
#[derive(Debug)]
pub(crate) struct Sized {
    pub layout: Layout,
    pub placed: Vec<Placed>,
    pub journal_blocks: u64,
    /// A journal was asked for, but the filesystem is too small for one: it
    /// is under this many bytes.
    pub no_journal_below: Option<u64>,
}

fn journal_for(blocks: u64, journal: bool) -> u64 {
    if journal {
        default_journal_blocks(blocks).unwrap_or(0)
    } else {
        0
    }
}

fn try_blocks(
    scan: &Scan,
    opts: &Options,
    blocks: u64,
    spare_inodes: bool,
) -> Result<Sized, AllocError> {
    let bs = opts.block_size.bytes();
    let needed = scan.inodes.len() as u64;
    // Auto sizes leave room for 20% more files (at least 256) besides free blocks.
    let wanted = if spare_inodes {
        needed + (needed / 5).max(256)
    } else {
        needed
    };
    let geo = Geometry::new(bs, blocks, opts.inodes, needed, wanted, opts.resize_inode)
        .map_err(AllocError::Geometry)?;
    let jb = journal_for(geo.blocks_count, opts.journal);
    let (layout, placed) = allocate(scan, geo, jb)?;
    Ok(Sized {
        layout,
        placed,
        journal_blocks: jb,
        no_journal_below: (opts.journal && jb == 0).then(|| MIN_JOURNAL_FS_BLOCKS * u64::from(bs)),
    })
}

/// [`Error::FsTooLarge`] for `size_bytes` with `opts`' block size.
fn too_large(opts: &Options, size_bytes: u64) -> Error {
    let bs = opts.block_size.bytes();
    Error::FsTooLarge {
        size_bytes,
        max_bytes: max_blocks(bs) * u64::from(bs),
    }
}

/// Smallest block count (in steps of 1 MiB) whose layout fits with `headroom` free blocks.
fn search(scan: &Scan, opts: &Options, headroom: u64) -> Result<Sized, Error> {
    let bs = opts.block_size.bytes();
    let journal = opts.journal;
    let step = (1u64 << 20) / u64::from(bs);
    let content = scan.content_blocks();
    let inode_blocks = (scan.inodes.len() as u64 * 256).div_ceil(u64::from(bs));
    let mut blocks =
        content + headroom + inode_blocks + journal_for(content * 2, journal) + 2 * step;
    if journal {
        // Big enough for mke2fs's smallest journal.
        blocks = blocks.max(MIN_JOURNAL_FS_BLOCKS);
    }
    for _ in 0..200 {
        blocks = blocks.div_ceil(step) * step;
        match try_blocks(scan, opts, blocks, headroom > 0) {
            Ok(s) if s.layout.free_blocks() >= headroom => return Ok(s),
            Ok(_) | Err(AllocError::NoSpace | AllocError::Geometry(GeometryError::NoRoom)) => {}
            Err(AllocError::Geometry(GeometryError::Inodes | GeometryError::Unplaceable(_))) => {}
            Err(AllocError::Geometry(GeometryError::BeyondLimits)) => {
                return Err(too_large(opts, blocks * u64::from(bs)));
            }
        }
        blocks += (blocks / 16).max(step);
    }
    Err(too_large(opts, blocks * u64::from(bs)))
}

/// Auto: contents + 10% + 1 MiB free (+ the journal mke2fs would pick).
pub(crate) fn auto(scan: &Scan, opts: &Options) -> Result<Sized, Error> {
    let headroom = scan.content_blocks() / 10 + (1u64 << 20) / u64::from(opts.block_size.bytes());
    search(scan, opts, headroom)
}

/// Fixed size; errors name the size needed.
pub(crate) fn fixed(scan: &Scan, opts: &Options, size_bytes: u64) -> Result<Sized, Error> {
    let bs = u64::from(opts.block_size.bytes());
    let blocks = size_bytes / bs;
    match try_blocks(scan, opts, blocks, false) {
        Ok(s) => Ok(s),
        Err(AllocError::Geometry(GeometryError::Inodes)) => Err(Error::TooManyInodes {
            needed: match opts.inodes {
                InodeSpec::Count(n) => n.max(scan.inodes.len() as u64),
                _ => scan.inodes.len() as u64,
            },
            max: max_inodes(opts, blocks),
            size_bytes,
        }),
        Err(AllocError::Geometry(GeometryError::BeyondLimits)) => Err(too_large(opts, size_bytes)),
        // Not for want of room: "at least <a bigger size>" would be wrong.
        Err(AllocError::Geometry(GeometryError::Unplaceable(reason))) => {
            Err(Error::CannotLayOut { size_bytes, reason })
        }
        Err(AllocError::NoSpace | AllocError::Geometry(GeometryError::NoRoom)) => {
            let (needed, s) = smallest_fit(scan, opts, blocks)?;
            Err(Error::TooSmall {
                size_bytes,
                needed_bytes: needed * bs,
                no_journal_below: s.no_journal_below,
            })
        }
    }
}

/// The most inodes a filesystem of `blocks` blocks holds (its inode tables
/// and the other fixed metadata fitting), 0 if none.
fn max_inodes(opts: &Options, blocks: u64) -> u64 {
    let bs = opts.block_size.bytes();
    let holds = |n: u64| {
        Geometry::new(bs, blocks, InodeSpec::Count(n), n, 0, opts.resize_inode)
            .and_then(|g| Layout::new(g.clone()).map(|_| g.inodes_count()))
            .ok()
    };
    let (mut lo, mut hi) = (0u64, u64::from(u32::MAX) + 1);
    let mut most = 0;
    // holds(lo) (or lo = 0), not holds(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match holds(mid) {
            Some(n) => {
                lo = mid;
                most = n;
            }
            None => hi = mid,
        }
    }
    most
}

/// The smallest block count above `failed` (which does not fit) that fits,
/// and its layout: it fits and one block less does not. A bigger filesystem
/// can hold less where the journal grows or the default inode ratio drops, so
/// the stretches between those sizes are searched in order, each by
/// bisection.
fn smallest_fit(scan: &Scan, opts: &Options, failed: u64) -> Result<(u64, Sized), Error> {
    let bs = u64::from(opts.block_size.bytes());
    let fits = |blocks: u64| match try_blocks(scan, opts, blocks, false) {
        Ok(s) => Ok(Some(s)),
        Err(AllocError::Geometry(GeometryError::BeyondLimits)) => {
            Err(too_large(opts, blocks.saturating_mul(bs)))
        }
        Err(_) => Ok(None),
    };
    // An upper bound: 1 MiB more, 2 MiB more, 4 MiB more… until one fits.
    let mut more = (1u64 << 20) / bs;
    let (hi, top) = loop {
        let hi = failed.saturating_add(more);
        if let Some(s) = fits(hi)? {
            break (hi, s);
        }
        more = more.saturating_mul(2);
    };
    // The smallest that fits in `lo + 1..=hi`, where `lo` does not fit and
    // `hi` does, with `best` its layout.
    let bisect = |mut lo: u64, mut hi: u64, mut best: Sized| {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match fits(mid)? {
                Some(s) => {
                    hi = mid;
                    best = s;
                }
                None => lo = mid,
            }
        }
        Ok((hi, best))
    };
    let mut steps: Vec<u64> = Vec::new();
    if opts.journal {
        steps.extend(journal_size_steps());
    }
    if opts.inodes == InodeSpec::Default {
        steps.extend(inode_ratio_steps().map(|bytes| bytes.div_ceil(bs)));
    }
    steps.retain(|&s| s > failed + 1 && s <= hi);
    steps.sort_unstable();
    steps.dedup();
    // `lo` does not fit: `failed`, then the top of each stretch that does not.
    let mut lo = failed;
    for end in steps.iter().map(|s| s - 1) {
        match fits(end)? {
            Some(best) => return bisect(lo, end, best),
            None => lo = end,
        }
    }
    bisect(lo, hi, top)
}
