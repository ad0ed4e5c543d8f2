//! Writing the image: temp file next to the target, contents streamed in inode order,
//! then inode tables, bitmaps, group descriptors and superblocks; rename on success.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::bitmap::{bitmap_block, bitmap_csum};
use crate::error::Error;
use crate::group_desc::{EXT4_BG_INODE_UNINIT, EXT4_BG_INODE_ZEROED, GroupDesc};
use crate::layout::LOG_GROUPS_PER_FLEX;
use crate::options::{Options, SizeSpec, Timestamp};
use crate::out::Out;
use crate::plan::scan;
use crate::report::{Fit, Progress, WriteReport};
use crate::size::{Sized, auto, fixed};
use crate::superblock::Superblock;
use crate::tree::Tree;
use crate::units::BlockNo;

/// Removes the temp file unless the build succeeded.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// splitmix64, for deriving the UUID and hash seed from the seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random16(state: &mut u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&splitmix(state).to_le_bytes());
    b[8..].copy_from_slice(&splitmix(state).to_le_bytes());
    b
}

/// UUID and directory hash seed: from the options, else derived from the seed
/// (default: the build time and label), never random.
fn ids(opts: &Options, ts: Timestamp) -> ([u8; 16], [u8; 16]) {
    let mut state = opts.seed.unwrap_or_else(|| {
        let label = opts.label.as_deref().unwrap_or("");
        crc32c::crc32c(label.as_bytes()) as u64 ^ (ts.sec as u64).rotate_left(32)
    });
    if let Some(u) = opts.uuid {
        state ^= u64::from_le_bytes(u[..8].try_into().unwrap_or_default());
    }
    let mut uuid = random16(&mut state);
    uuid[6] = (uuid[6] & 0x0F) | 0x40;
    uuid[8] = (uuid[8] & 0x3F) | 0x80;
    let hash = random16(&mut state);
    (opts.uuid.unwrap_or(uuid), hash)
}

/// A temp path next to the target: `.name.tmp-<pid>-<n>`.
fn temp_path(image: &Path) -> Result<PathBuf, Error> {
    let bad = |msg: &str| Error::Output {
        path: image.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, msg.to_owned()),
    };
    let name = image
        .file_name()
        .ok_or_else(|| bad("image path has no file name"))?;
    let dir = match image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(&format!("directory {} does not exist", dir.display())));
    }
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    // pid + per-process counter: concurrent builds never share a temp file.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(dir.join(tmp))
}

/// The label as the superblock holds it.
fn label_bytes(opts: &Options) -> Result<[u8; 16], Error> {
    let mut label = [0u8; 16];
    if let Some(l) = &opts.label {
        if l.len() > 16 {
            return Err(Error::BadLabel { label: l.clone() });
        }
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    Ok(label)
}

/// Everything placed: the scan, the sized layout, the image's length.
fn lay_out(
    tree: &mut Tree,
    opts: &Options,
    hash_seed: &[u8; 16],
) -> Result<(crate::plan::Scan, Sized, u64), Error> {
    let bs = opts.block_size.bytes();
    if let Some(reason) = opts.inodes.invalid() {
        return Err(Error::BadInodeSpec {
            spec: opts.inodes,
            reason,
        });
    }
    let sc = scan(tree, bs, opts.journal, hash_seed)?;
    let sized: Sized = match opts.size {
        SizeSpec::Auto => auto(&sc, opts)?,
        SizeSpec::Fixed(n) => fixed(&sc, opts, n)?,
    };
    let file_len = match opts.size {
        SizeSpec::Fixed(n) => n,
        SizeSpec::Auto => sized.layout.geo.blocks_count * u64::from(bs),
    };
    Ok((sc, sized, file_len))
}

/// Everything [`write`] would decide, without writing: the size, or why
/// the contents do not fit.
pub(crate) fn check(tree: &mut Tree, opts: &Options, ts: Timestamp) -> Result<Fit, Error> {
    label_bytes(opts)?;
    let (_, hash_seed) = ids(opts, ts);
    let (sc, sized, size_bytes) = lay_out(tree, opts, &hash_seed)?;
    Ok(Fit {
        size_bytes,
        blocks_count: sized.layout.geo.blocks_count,
        inodes_used: sc.inodes.len() as u64,
        inodes_count: sized.layout.geo.inodes_count(),
        no_journal_below: sized.no_journal_below,
    })
}

pub(crate) fn write(
    tree: &mut Tree,
    opts: &Options,
    ts: Timestamp,
    image: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<WriteReport, Error> {
    let tmp = temp_path(image)?;
    let bs = opts.block_size.bytes();
    let label = label_bytes(opts)?;
    let (uuid, hash_seed) = ids(opts, ts);
    let (sc, sized, file_len) = lay_out(tree, opts, &hash_seed)?;
    let geo = sized.layout.geo.clone();
    let csum_seed = crate::superblock::csum_seed(&uuid);

    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::Output {
            path: tmp.clone(),
            source: e,
        })?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    let out = Out {
        file,
        path: tmp.clone(),
        bs,
    };
    out.file.set_len(file_len).map_err(|e| Error::Output {
        path: tmp.clone(),
        source: e,
    })?;

    let ctx = crate::writer_inodes::Ctx {
        tree,
        scan: &sc,
        placed: &sized.placed,
        out: &out,
        csum_seed,
        ts,
        uuid,
        hash_seed,
    };
    let written = ctx.write_all(&sized.layout, progress)?;

    // Bitmaps and descriptors.
    let l = &sized.layout;
    let ipg = u64::from(geo.inodes_per_group);
    let used_inodes = sc.inodes.len() as u64;
    let mut descs = Vec::with_capacity(geo.groups as usize);
    let mut free_blocks_total = 0u64;
    for g in 0..geo.groups {
        let (s, e) = (geo.group_start(g), geo.group_end(g));
        let bb = bitmap_block(bs as usize, e - s, |i| l.used.get(s + i));
        let ones = l.used.count_ones(s, e);
        free_blocks_total += (e - s) - ones;
        out.block(l.block_bitmap[g as usize], &bb)?;
        let used = used_inodes.saturating_sub(u64::from(g) * ipg).min(ipg);
        let ib = bitmap_block(bs as usize, ipg, |i| i < used);
        out.block(l.inode_bitmap[g as usize], &ib)?;
        let mut flags = EXT4_BG_INODE_ZEROED;
        if used == 0 {
            flags |= EXT4_BG_INODE_UNINIT;
        }
        descs.push(GroupDesc {
            bg_block_bitmap: l.block_bitmap[g as usize].0,
            bg_inode_bitmap: l.inode_bitmap[g as usize].0,
            bg_inode_table: l.inode_table[g as usize].0,
            bg_free_blocks_count: ((e - s) - ones) as u32,
            bg_free_inodes_count: (ipg - used) as u32,
            bg_used_dirs_count: written.dirs_per_group[g as usize],
            bg_flags: flags,
            bg_block_bitmap_csum: bitmap_csum(csum_seed, &bb, (geo.blocks_per_group / 8) as usize),
            bg_inode_bitmap_csum: bitmap_csum(csum_seed, &ib, (ipg / 8) as usize),
            bg_itable_unused: (ipg - used) as u32,
        });
    }
    let mut gdt = vec![0u8; geo.gdt_blocks as usize * bs as usize];
    for (g, d) in descs.iter().enumerate() {
        gdt[g * 64..g * 64 + 64].copy_from_slice(&d.to_bytes(g as u32, csum_seed));
    }
    let sb = Superblock {
        s_inodes_count: geo.inodes_count() as u32,
        s_blocks_count: geo.blocks_count,
        s_r_blocks_count: geo.blocks_count / 20,
        s_free_blocks_count: free_blocks_total,
        s_free_inodes_count: (geo.inodes_count() - used_inodes) as u32,
        s_first_data_block: geo.first_data_block as u32,
        s_log_block_size: opts.block_size.log(),
        s_blocks_per_group: geo.blocks_per_group,
        s_inodes_per_group: geo.inodes_per_group,
        s_time: (ts.sec & 0xFFFF_FFFF) as u32,
        s_uuid: uuid,
        s_volume_name: label,
        s_hash_seed: hash_seed,
        s_journal_inum: if sized.journal_blocks > 0 { 8 } else { 0 },
        s_jnl_blocks: written.jnl_blocks,
        s_log_groups_per_flex: LOG_GROUPS_PER_FLEX,
        s_overhead_clusters: 0,
        s_kbytes_written: 0,
        s_reserved_gdt_blocks: geo.reserved_gdt_blocks as u16,
        meta_bg: geo.meta_bg,
    };
    // Superblock and descriptor copies where each group has them.
    let bsz = bs as usize;
    for g in 0..geo.groups {
        let head = geo.head(g);
        let start = geo.group_start(g);
        if head.superblock {
            // s_block_group_nr is 16 bits: mke2fs writes 65535 beyond.
            let sb_bytes = sb.to_bytes(g.min(0xFFFF) as u16);
            let off = if g == 0 { 1024 } else { start * u64::from(bs) };
            out.at(off, &sb_bytes)?;
        }
        let d = head.desc_blocks;
        if d.start < d.end {
            let at = BlockNo(start + u64::from(head.superblock));
            out.block(at, &gdt[d.start as usize * bsz..d.end as usize * bsz])?;
        }
    }
    drop(out);
    std::fs::rename(&tmp, image).map_err(|e| Error::Output {
        path: image.to_owned(),
        source: e,
    })?;
    guard.armed = false;
    Ok(WriteReport {
        size_bytes: file_len,
        blocks_used: geo.blocks_count - free_blocks_total,
        inodes_used: used_inodes,
        inodes_count: geo.inodes_count(),
        blocks_count: geo.blocks_count,
        block_size: bs,
        journal_blocks: sized.journal_blocks,
        no_journal_below: sized.no_journal_below,
        uuid,
    })
}
