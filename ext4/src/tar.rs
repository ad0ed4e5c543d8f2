//! Adding a tar archive to the plan, read once as a stream: headers (with GNU
//! long names and pax extended headers) become entries, file contents are
//! spooled to an unlinked temporary file ([`crate::spool`]) which the writer
//! copies from, sparse members keep their holes.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use crate::error::Error;
use crate::options::{FileData, Metadata, TimePolicy, Timestamp};
use crate::spool::Spool;
use crate::tar_header::{Header, pax_records, pax_time, pax_u64, sparse_entries};
use crate::tree::{NodeId, NodeKind, ROOT, Tree};

/// Largest extended header (pax records, GNU long name) read into memory.
const MAX_EXTENSION: u64 = 16 << 20;

/// The archive as a stream of 512-byte blocks, counting its offset.
struct Stream<R> {
    r: BufReader<R>,
    offset: u64,
}

impl<R: Read> Stream<R> {
    /// Fills `buf`; `Ok(false)` at a clean end of the stream before any byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, Error> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.bad(None, "the archive ends in the middle of a block"));
                }
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::TarRead {
                        offset: self.offset,
                        source: e,
                    });
                }
            }
        }
        Ok(true)
    }

    /// Reads exactly `buf.len()` bytes of member `name`'s data.
    fn data(&mut self, buf: &mut [u8], name: &str) -> Result<(), Error> {
        match self.fill(buf) {
            Ok(true) => Ok(()),
            Ok(false) | Err(Error::BadTar { .. }) => Err(self.truncated(name)),
            Err(e) => Err(e),
        }
    }

    fn truncated(&self, name: &str) -> Error {
        self.bad(Some(name), "the archive ends inside this member's data")
    }

    /// Skips `n` bytes of member `name`'s data.
    fn skip(&mut self, mut n: u64, name: &str) -> Result<(), Error> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            match self.fill(&mut buf[..k]) {
                Ok(true) => n -= k as u64,
                Ok(false) | Err(Error::BadTar { .. }) => return Err(self.truncated(name)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Skips the padding after `len` bytes of data, up to a block boundary.
    fn pad(&mut self, len: u64, name: &str) -> Result<(), Error> {
        self.skip(len.next_multiple_of(512) - len, name)
    }

    fn bad(&self, member: Option<&str>, reason: &str) -> Error {
        Error::BadTar {
            member: member.map(str::to_owned),
            offset: self.offset,
            reason: reason.to_owned(),
        }
    }
}

/// What came before a member: GNU long names and pax records.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Vec<(String, Vec<u8>)>,
}

/// Names a compressed stream by its magic bytes.
fn compression(b: &[u8]) -> Option<&'static str> {
    [
        (&b"\x1f\x8b"[..], "gzip"),
        (b"\xfd7zXZ\0", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"BZh", "bzip2"),
        (b"\x04\x22\x4d\x18", "lz4"),
    ]
    .iter()
    .find(|(m, _)| b.starts_with(m))
    .map(|(_, n)| *n)
}

/// Splits a member name into components: `.` and empty ones dropped, `..` refused.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the member's path contains `..`"),
            c if c.len() > 255 => {
                return Err("a name in the member's path is longer than 255 bytes");
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One member's facts, from its header and what came before it.
struct Member {
    name: Vec<u8>,
    link: Vec<u8>,
    size: u64,
    meta: Metadata,
    device: (u32, u32),
    /// Real size and (offset, length) data segments, for a sparse member.
    sparse: Option<(u64, Vec<(u64, u64)>)>,
    /// Pax sparse format 1.0: the map is at the start of the data.
    sparse_map_in_data: bool,
}

/// The pax value of `key`, the member's before the global one.
fn pax<'a>(
    local: &'a [(String, Vec<u8>)],
    global: &'a BTreeMap<String, Vec<u8>>,
    key: &str,
) -> Option<&'a [u8]> {
    local
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
        .or_else(|| global.get(key).map(Vec::as_slice))
}

fn member(
    h: &Header,
    p: Pending,
    global: &BTreeMap<String, Vec<u8>>,
) -> Result<Member, &'static str> {
    let get = |k| pax(&p.pax, global, k);
    let sparse_name = get("GNU.sparse.name").map(<[u8]>::to_vec);
    let name = sparse_name
        .or_else(|| get("path").map(<[u8]>::to_vec))
        .or(p.long_name)
        .unwrap_or_else(|| h.name());
    let link = get("linkpath")
        .map(<[u8]>::to_vec)
        .or(p.long_link)
        .unwrap_or_else(|| h.linkname());
    let num = |k, v: Result<u64, &'static str>| match get(k) {
        Some(s) => pax_u64(s).ok_or("a pax number is malformed"),
        None => v,
    };
    let size = num("size", h.size())?;
    let id = |k, v: Result<u32, &'static str>| -> Result<u32, &'static str> {
        match get(k) {
            Some(s) => pax_u64(s)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("a pax uid or gid is malformed"),
            None => v,
        }
    };
    let time = |k| -> Result<Option<Timestamp>, &'static str> {
        get(k)
            .map(|v| pax_time(v).ok_or("a pax time is malformed"))
            .transpose()
    };
    let mtime = time("mtime")?.map_or_else(|| h.mtime(), Ok)?;
    let (gnu_atime, gnu_ctime) = h.gnu_times();
    let mut meta = Metadata::new(h.mode()?, mtime);
    meta.atime = time("atime")?.or(gnu_atime).unwrap_or(mtime);
    meta.ctime = time("ctime")?.or(gnu_ctime).unwrap_or(mtime);
    meta.uid = id("uid", h.uid())?;
    meta.gid = id("gid", h.gid())?;
    for (k, v) in global.iter().chain(p.pax.iter().map(|(k, v)| (k, v))) {
        let Some(x) = k.strip_prefix("SCHILY.xattr.") else {
            continue;
        };
        if crate::xattr::split_name(x).is_none() {
            continue;
        }
        let v = if x.starts_with("system.posix_acl_") {
            crate::xattr::acl_to_disk(v)
        } else {
            v.clone()
        };
        meta.xattrs.retain(|(n, _)| n != x);
        meta.xattrs.push((x.to_owned(), v));
    }
    let device = match (get("SCHILY.devmajor"), get("SCHILY.devminor")) {
        (Some(a), Some(b)) => (
            pax_u64(a)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("a pax device number is malformed")?,
            pax_u64(b)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("a pax device number is malformed")?,
        ),
        _ => h.device()?,
    };
    let mut sparse = None;
    let mut sparse_map_in_data = false;
    let major = get("GNU.sparse.major").and_then(pax_u64);
    if major == Some(1) {
        let real = get("GNU.sparse.realsize")
            .and_then(pax_u64)
            .ok_or("a pax sparse 1.0 member has no GNU.sparse.realsize")?;
        sparse = Some((real, Vec::new()));
        sparse_map_in_data = true;
    } else if let Some(real) = get("GNU.sparse.size").and_then(pax_u64) {
        let map = if let Some(m) = get("GNU.sparse.map") {
            // 0.1: "offset,size,offset,size,…"
            let nums: Option<Vec<u64>> = m.split(|&b| b == b',').map(pax_u64).collect();
            let nums = nums.ok_or("GNU.sparse.map is malformed")?;
            if nums.len() % 2 != 0 {
                return Err("GNU.sparse.map has an odd count of numbers");
            }
            nums.chunks(2).map(|c| (c[0], c[1])).collect()
        } else {
            // 0.0: repeated GNU.sparse.offset / GNU.sparse.numbytes records.
            let offs = p.pax.iter().filter(|(k, _)| k == "GNU.sparse.offset");
            let lens = p.pax.iter().filter(|(k, _)| k == "GNU.sparse.numbytes");
            let mut map = Vec::new();
            for ((_, o), (_, l)) in offs.zip(lens) {
                map.push((
                    pax_u64(o).ok_or("GNU.sparse.offset is malformed")?,
                    pax_u64(l).ok_or("GNU.sparse.numbytes is malformed")?,
                ));
            }
            map
        };
        sparse = Some((real, map));
    }
    Ok(Member {
        name,
        link,
        size,
        meta,
        device,
        sparse,
        sparse_map_in_data,
    })
}

/// Reads pax sparse 1.0's map from the start of the data: decimal numbers, one a
/// line (the count, then offset and size pairs), padded to a block. Returns the map
/// and the bytes it took.
fn read_data_map<R: Read>(
    s: &mut Stream<R>,
    name: &str,
    size: u64,
) -> Result<(Vec<(u64, u64)>, u64), Error> {
    let mut block = [0u8; 512];
    let mut used = 0u64;
    let mut pos = 512;
    let mut nums: Vec<u64> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut want: Option<u64> = None;
    loop {
        if want.is_some_and(|w| nums.len() as u64 == 1 + 2 * w) {
            break;
        }
        if pos == 512 {
            if used + 512 > size {
                return Err(s.bad(Some(name), "the sparse map runs past the member's data"));
            }
            s.data(&mut block, name)?;
            used += 512;
            pos = 0;
        }
        let b = block[pos];
        pos += 1;
        if b == b'\n' {
            let n = std::str::from_utf8(&cur)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    s.bad(
                        Some(name),
                        "the sparse map holds something other than numbers",
                    )
                })?;
            nums.push(n);
            cur.clear();
            if nums.len() == 1 {
                if n > size / 2 + 1 {
                    return Err(s.bad(Some(name), "the sparse map's count is impossible"));
                }
                want = Some(n);
            }
        } else if b.is_ascii_digit() && cur.len() < 20 {
            cur.push(b);
        } else {
            return Err(s.bad(
                Some(name),
                "the sparse map holds something other than numbers",
            ));
        }
    }
    Ok((nums[1..].chunks(2).map(|c| (c[0], c[1])).collect(), used))
}

/// Adds every member of `archive` under image directory `dest`.
pub(crate) fn add(
    tree: &mut Tree,
    archive: impl Read,
    dest: &str,
    times: TimePolicy,
    block_size: u32,
) -> Result<(), Error> {
    let parts = Tree::components(dest)?;
    let bad_dest = |reason| Error::InvalidPath {
        path: dest.to_owned(),
        reason,
    };
    let top = tree
        .walk_dirs(ROOT, &parts, true, &mut 0)
        .map_err(bad_dest)?
        .ok_or_else(|| bad_dest("not a directory"))?;
    let mut s = Stream {
        r: BufReader::with_capacity(1 << 16, archive),
        offset: 0,
    };
    let mut spool: Option<Spool> = None;
    let mut global: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut pending = Pending::default();
    let mut first = true;
    loop {
        let at = s.offset;
        let mut h = Header([0u8; 512]);
        if !s.fill(&mut h.0)? {
            if first {
                return Err(s.bad(None, "the archive is empty"));
            }
            break;
        }
        if h.is_zero() {
            break;
        }
        if !h.checksum_ok() {
            let reason = match compression(&h.0) {
                Some(c) if first => format!("this is {c}-compressed data: decompress it first"),
                _ if first => "not a tar archive (no valid header at the start)".to_owned(),
                _ => "header checksum mismatch: the archive is corrupt".to_owned(),
            };
            let name = String::from_utf8_lossy(&h.name()).into_owned();
            return Err(Error::BadTar {
                member: (!first).then_some(name),
                offset: at,
                reason,
            });
        }
        first = false;
        let raw_name = String::from_utf8_lossy(&h.name()).into_owned();
        let fail = |reason: &str, offset| Error::BadTar {
            member: Some(raw_name.clone()),
            offset,
            reason: reason.to_owned(),
        };
        let t = h.typeflag();
        if matches!(t, b'x' | b'g' | b'L' | b'K') {
            let size = h.size().map_err(|r| fail(r, at))?;
            if size > MAX_EXTENSION {
                return Err(fail("an extended header is too large", at));
            }
            let mut data = vec![0u8; size as usize];
            s.data(&mut data, &raw_name)?;
            s.pad(size, &raw_name)?;
            match t {
                b'x' | b'g' => {
                    let recs = pax_records(&data).map_err(|r| fail(&r, at))?;
                    if t == b'x' {
                        pending.pax.extend(recs);
                    } else {
                        global.extend(recs);
                    }
                }
                _ => {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    data.truncate(end);
                    if t == b'L' {
                        pending.long_name = Some(data);
                    } else {
                        pending.long_link = Some(data);
                    }
                }
            }
            continue;
        }
        let mut m = member(&h, std::mem::take(&mut pending), &global).map_err(|r| fail(r, at))?;
        let name = String::from_utf8_lossy(&m.name).into_owned();
        let fail = |reason: &str| Error::BadTar {
            member: Some(name.clone()),
            offset: at,
            reason: reason.to_owned(),
        };
        if t == b'S' {
            // Old GNU sparse: the map in the header, then in extension blocks.
            let g = h.gnu_sparse().map_err(fail)?;
            let (mut map, mut more, real) = (g.map, g.extended, g.real_size);
            while more {
                let mut ext = [0u8; 512];
                s.data(&mut ext, &name)?;
                map.extend(sparse_entries(&ext[..504]).map_err(fail)?);
                more = ext[504] != 0;
            }
            m.sparse = Some((real, map));
        }
        times.apply_meta(&mut m.meta);
        let comps = components(&m.name).map_err(fail)?;
        let kind = match t {
            b'0' | b'\0' | b'7' | b'S' => {
                let (size, map) = match m.sparse.take() {
                    Some((real, mut map)) => {
                        let mut stored = m.size;
                        if m.sparse_map_in_data {
                            let (mm, used) = read_data_map(&mut s, &name, m.size)?;
                            map = mm;
                            stored -= used;
                        }
                        let sum: u64 = map.iter().map(|&(_, l)| l).sum();
                        if sum != stored {
                            return Err(fail("the sparse map does not add up to the stored data"));
                        }
                        if map
                            .iter()
                            .any(|&(o, l)| o.checked_add(l).is_none_or(|e| e > real))
                        {
                            return Err(fail("the sparse map reaches past the file's size"));
                        }
                        (real, map)
                    }
                    None => (m.size, vec![(0, m.size)]),
                };
                let sp = match &mut spool {
                    Some(sp) => sp,
                    None => spool.insert(Spool::new(block_size)?),
                };
                let region = sp.take(&mut |buf| s.data(buf, &name), size, map)?;
                // All of the data read (a 1.0 map's blocks, then the segments).
                s.pad(m.size, &name)?;
                NodeKind::File {
                    data: FileData::Region(region),
                    stat: None,
                }
            }
            b'1' => {
                s.skip(m.size.next_multiple_of(512), &name)?;
                let target = components(&m.link).map_err(fail)?;
                let Some((tname, tdirs)) = target.split_last() else {
                    return Err(fail("a hard link to the archive's top directory"));
                };
                let found = tree
                    .walk_dirs(top, tdirs, false, &mut 0)
                    .ok()
                    .flatten()
                    .and_then(|d| tree.children(d).and_then(|c| c.get(*tname)).copied());
                let Some(id) = found else {
                    return Err(fail(&format!(
                        "a hard link to {:?}, which is not in the archive before it",
                        String::from_utf8_lossy(&m.link)
                    )));
                };
                if matches!(tree.nodes[id].kind, NodeKind::Dir { .. }) {
                    return Err(fail("a hard link to a directory"));
                }
                let (lname, ldirs) = comps
                    .split_last()
                    .ok_or_else(|| fail("a hard link at the archive's top directory"))?;
                let parent = parent_dir(tree, top, ldirs).map_err(fail)?;
                tree.link(parent, lname, id);
                continue;
            }
            _ => {
                s.skip(m.size.next_multiple_of(512), &name)?;
                let (major, minor) = m.device;
                match t {
                    b'2' => {
                        if m.link.is_empty() {
                            return Err(fail("a symlink with an empty target"));
                        }
                        NodeKind::Symlink(m.link.clone())
                    }
                    b'3' => NodeKind::CharDev { major, minor },
                    b'4' => NodeKind::BlockDev { major, minor },
                    b'5' | b'D' => NodeKind::Dir {
                        children: Default::default(),
                    },
                    b'6' => NodeKind::Fifo,
                    b'V' => continue,
                    t => {
                        return Err(fail(&format!(
                            "member type {:?} is not supported",
                            char::from(t)
                        )));
                    }
                }
            }
        };
        place(tree, top, &comps, kind, m.meta).map_err(fail)?;
    }
    Ok(())
}

/// The directory holding a member whose parent components are `dirs` (created if missing).
fn parent_dir(tree: &mut Tree, top: NodeId, dirs: &[&[u8]]) -> Result<NodeId, &'static str> {
    tree.walk_dirs(top, dirs, true, &mut 0)?
        .ok_or("a parent is not a directory")
}

/// Puts one member at `comps` under `top`; the top directory itself takes a
/// directory member's metadata.
fn place(
    tree: &mut Tree,
    top: NodeId,
    comps: &[&[u8]],
    kind: NodeKind,
    meta: Metadata,
) -> Result<(), &'static str> {
    let Some((name, dirs)) = comps.split_last() else {
        return match kind {
            NodeKind::Dir { .. } => {
                tree.nodes[top].meta = meta;
                Ok(())
            }
            _ => Err("a member that is not a directory names the archive's top"),
        };
    };
    let parent = parent_dir(tree, top, dirs)?;
    tree.upsert(parent, name, kind, meta);
    Ok(())
}
