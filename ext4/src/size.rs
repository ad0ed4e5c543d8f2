//! Choosing the filesystem size: fixed, or the smallest that fits plus headroom.

use crate::error::Error;
use crate::journal::default_journal_blocks;
use crate::layout::{Geometry, GeometryError, Layout};
use crate::plan::{AllocError, Placed, Scan, allocate};

/// A geometry with everything placed.
#[derive(Debug)]
pub(crate) struct Sized {
    pub layout: Layout,
    pub placed: Vec<Placed>,
    pub journal_blocks: u64,
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
    bs: u32,
    blocks: u64,
    journal: bool,
    spare_inodes: bool,
) -> Result<Sized, AllocError> {
    let needed = scan.inodes.len() as u64;
    // Auto sizes leave room for 20% more files (at least 256) besides free blocks.
    let wanted = if spare_inodes {
        needed + (needed / 5).max(256)
    } else {
        needed
    };
    let geo = Geometry::new(bs, blocks, needed, wanted).map_err(AllocError::Geometry)?;
    let jb = journal_for(geo.blocks_count, journal);
    let (layout, placed) = allocate(scan, geo, jb)?;
    Ok(Sized {
        layout,
        placed,
        journal_blocks: jb,
    })
}

/// Smallest block count (in steps of 1 MiB) whose layout fits with `headroom` free blocks.
fn search(scan: &Scan, bs: u32, journal: bool, headroom: u64) -> Result<Sized, Error> {
    let step = (1u64 << 20) / u64::from(bs);
    let content = scan.content_blocks();
    let inode_blocks = (scan.inodes.len() as u64 * 256).div_ceil(u64::from(bs));
    let mut blocks =
        content + headroom + inode_blocks + journal_for(content * 2, journal) + 2 * step;
    if journal {
        // Big enough for mke2fs's smallest journal.
        blocks = blocks.max(2048);
    }
    for _ in 0..200 {
        blocks = blocks.div_ceil(step) * step;
        match try_blocks(scan, bs, blocks, journal, headroom > 0) {
            Ok(s) if s.layout.free_blocks() >= headroom => return Ok(s),
            Ok(_) | Err(AllocError::NoSpace | AllocError::Geometry(GeometryError::NoRoom)) => {}
            Err(AllocError::Geometry(GeometryError::Inodes { .. })) => {}
            Err(AllocError::Geometry(GeometryError::BeyondLimits)) => {
                return Err(Error::FsTooLarge {
                    size_bytes: blocks * u64::from(bs),
                });
            }
        }
        blocks += (blocks / 16).max(step);
    }
    Err(Error::FsTooLarge {
        size_bytes: blocks * u64::from(bs),
    })
}

/// Auto: contents + 10% + 1 MiB free (+ the journal mke2fs would pick).
pub(crate) fn auto(scan: &Scan, bs: u32, journal: bool) -> Result<Sized, Error> {
    let headroom = scan.content_blocks() / 10 + (1u64 << 20) / u64::from(bs);
    search(scan, bs, journal, headroom)
}

/// Fixed size; errors name the size needed.
pub(crate) fn fixed(scan: &Scan, bs: u32, journal: bool, size_bytes: u64) -> Result<Sized, Error> {
    let blocks = size_bytes / u64::from(bs);
    match try_blocks(scan, bs, blocks, journal, false) {
        Ok(s) => Ok(s),
        Err(AllocError::Geometry(GeometryError::Inodes { max })) => Err(Error::TooManyInodes {
            needed: scan.inodes.len() as u64,
            max,
            size_bytes,
        }),
        Err(AllocError::Geometry(GeometryError::BeyondLimits)) => {
            Err(Error::FsTooLarge { size_bytes })
        }
        Err(_) => {
            let needed = search(scan, bs, journal, 0)?.layout.geo.blocks_count * u64::from(bs);
            Err(Error::TooSmall {
                size_bytes,
                needed_bytes: needed.max(size_bytes + 1),
            })
        }
    }
}
