//! Shared helpers: locating and running e2fsck/debugfs, reading images back with
//! ext4-view, and comparing them with the entries that were asked for.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ext4fs_builder::{EntryKind, FileData, Metadata};

/// Finds an e2fsprogs tool in /usr/sbin, /sbin or PATH.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("ext4t-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `e2fsck -fn` and fails unless it exits 0 and prints nothing but the pass headers.
pub fn e2fsck(img: &Path) {
    let out = Command::new(tool("e2fsck"))
        .arg("-fn")
        .arg(img)
        .output()
        .expect("run e2fsck");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("Pass ") && !l.trim().is_empty() && !l.contains(" files ("))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "e2fsck -fn {} failed ({}):\n{stdout}\n{stderr}",
        img.display(),
        out.status
    );
}

/// Runs many debugfs commands in one process; returns each command's output.
pub fn debugfs(img: &Path, cmds: &[String]) -> Vec<String> {
    let dir = Scratch::new("dbg");
    let script = dir.path("cmds");
    std::fs::write(&script, cmds.join("\n") + "\n").unwrap();
    let out = Command::new(tool("debugfs"))
        .arg("-f")
        .arg(&script)
        .arg(img)
        .output()
        .expect("run debugfs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut res: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("debugfs: ") {
            res.push(String::new());
        } else if let Some(last) = res.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    assert_eq!(
        res.len(),
        cmds.len(),
        "debugfs output:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    res
}

/// One expected entry, flattened: what the image must hold at `path`.
#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: EntryKind,
    pub meta: Metadata,
}

/// Every file (`(path in the image, contents)`) reads back with debugfs's
/// `dump` byte for byte as written.
pub fn contents_intact(img: &Path, files: &[(String, Vec<u8>)]) {
    if files.is_empty() {
        return;
    }
    let d = Scratch::new("dump");
    let cmds: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, (p, _))| format!("dump {p} {}", d.path(&i.to_string()).display()))
        .collect();
    debugfs(img, &cmds);
    for (i, (p, data)) in files.iter().enumerate() {
        let got = std::fs::read(d.path(&i.to_string())).unwrap_or_default();
        assert!(
            got == *data,
            "{p}: {} bytes back, {} written",
            got.len(),
            data.len()
        );
    }
}

/// Resolves hard links and file data so checks compare final contents.
pub fn content_of(data: &FileData) -> Vec<u8> {
    match data {
        FileData::Bytes(b) => b.clone(),
        FileData::Path(p) => std::fs::read(p).unwrap(),
        FileData::Region(r) => {
            use std::os::unix::fs::FileExt;
            let mut v = vec![0u8; r.size() as usize];
            for &(s, e) in r.data() {
                r.file()
                    .read_exact_at(&mut v[s as usize..e as usize], r.offset() + s)
                    .unwrap();
            }
            v
        }
    }
}

fn type_char(kind: &EntryKind) -> u32 {
    match kind {
        EntryKind::File(_) => 0o100000,
        EntryKind::Dir => 0o040000,
        EntryKind::Symlink(_) => 0o120000,
        EntryKind::CharDev { .. } => 0o020000,
        EntryKind::BlockDev { .. } => 0o060000,
        EntryKind::Fifo => 0o010000,
        EntryKind::Socket => 0o140000,
        EntryKind::HardLink(_) => 0,
    }
}

fn field<'a>(stat: &'a str, key: &str) -> Option<&'a str> {
    let i = stat.find(key)?;
    let rest = &stat[i + key.len()..];
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// `0x65000000:00000014` -> (seconds as i64 via epoch bits, nsec).
fn parse_time(raw: &str) -> (i64, u32) {
    let mut it = raw.split(':');
    let lo = u32::from_str_radix(it.next().unwrap().trim_start_matches("0x"), 16).unwrap();
    let extra = it
        .next()
        .map(|x| u32::from_str_radix(x, 16).unwrap())
        .unwrap_or(0);
    let sec = i64::from(i32::from_ne_bytes(lo.to_ne_bytes())) + (i64::from(extra & 3) << 32);
    (sec, extra >> 2)
}

/// Checks every expected entry with debugfs (stat, dump, ea_list/ea_get) and with
/// ext4-view, and that directories hold exactly the expected names.
pub fn verify(img: &Path, expect: &BTreeMap<String, Expect>) {
    e2fsck(img);
    verify_ext4_view(img, expect);
    verify_debugfs(img, expect);
}

/// Names directly inside `dir`, using the sorted map's range instead of a full scan.
pub fn children(expect: &BTreeMap<String, Expect>, dir: &str) -> Vec<String> {
    let prefix = if dir == "/" {
        "/".to_owned()
    } else {
        format!("{dir}/")
    };
    expect
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| k.strip_prefix(&prefix))
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .map(str::to_owned)
        .collect()
}

fn resolve<'a>(expect: &'a BTreeMap<String, Expect>, mut e: &'a Expect) -> &'a Expect {
    while let EntryKind::HardLink(t) = &e.kind {
        e = &expect[t];
    }
    e
}

/// ext4-view names paths of at most this many bytes; a deeper entry is checked
/// only by its place in its directory's listing (debugfs checks the rest).
pub const EXT4_VIEW_PATH_MAX: usize = 4096;

pub fn verify_ext4_view(img: &Path, expect: &BTreeMap<String, Expect>) {
    let fs = ext4_view::Ext4::load_from_path(img).expect("ext4-view loads the image");
    for (path, e) in expect {
        if path.len() > EXT4_VIEW_PATH_MAX {
            continue;
        }
        let e = resolve(expect, e);
        let m = fs
            .symlink_metadata(path.as_str())
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        assert_eq!(m.mode() & 0o7777, e.meta.mode, "mode of {path}");
        let ft = m.file_type();
        let got_type = [
            (ft.is_regular_file(), 0o100000),
            (ft.is_dir(), 0o040000),
            (ft.is_symlink(), 0o120000),
            (ft.is_char_dev(), 0o020000),
            (ft.is_block_dev(), 0o060000),
            (ft.is_fifo(), 0o010000),
            (ft.is_socket(), 0o140000),
        ]
        .iter()
        .find(|x| x.0)
        .map(|x| x.1);
        assert_eq!(got_type, Some(type_char(&e.kind)), "type of {path}");
        assert_eq!(
            (m.uid(), m.gid()),
            (e.meta.uid, e.meta.gid),
            "owner of {path}"
        );
        let t = m.modified();
        assert_eq!(
            (t.seconds(), t.nanoseconds()),
            (e.meta.mtime.sec, e.meta.mtime.nsec),
            "mtime of {path}"
        );
        let t = m.accessed();
        assert_eq!(
            (t.seconds(), t.nanoseconds()),
            (e.meta.atime.sec, e.meta.atime.nsec),
            "atime of {path}"
        );
        let c = m.created().expect("crtime present");
        assert_eq!(
            (c.seconds(), c.nanoseconds()),
            (e.meta.crtime.sec, e.meta.crtime.nsec),
            "crtime of {path}"
        );
        match &e.kind {
            EntryKind::File(d) => {
                let want = content_of(d);
                assert_eq!(m.len(), want.len() as u64, "size of {path}");
                assert!(fs.read(path.as_str()).unwrap() == want, "content of {path}");
            }
            EntryKind::Symlink(t) => {
                let got = fs.read_link(path.as_str()).unwrap();
                assert_eq!(
                    got.as_ref(),
                    t.as_os_str().as_encoded_bytes(),
                    "target of {path}"
                );
            }
            EntryKind::Dir => {
                let mut names: Vec<String> = fs
                    .read_dir(path.as_str())
                    .unwrap()
                    .map(|d| d.unwrap().file_name().as_str().unwrap().to_owned())
                    .filter(|n| n != "." && n != "..")
                    .collect();
                names.sort();
                let mut want = children(expect, path);
                want.sort();
                assert_eq!(names, want, "entries of {path}");
            }
            _ => {}
        }
    }
}

pub fn verify_debugfs(img: &Path, expect: &BTreeMap<String, Expect>) {
    let scratch = Scratch::new("dump");
    let mut cmds = Vec::new();
    let mut plan = Vec::new();
    for (i, (path, e)) in expect.iter().enumerate() {
        let q = format!("\"{}\"", path.replace('"', "\\\""));
        cmds.push(format!("stat {q}"));
        plan.push((path, e, "stat", String::new()));
        if let EntryKind::File(_) = resolve(expect, e).kind {
            let out = scratch.path(&format!("f{i}"));
            cmds.push(format!("dump {q} {}", out.display()));
            plan.push((path, e, "dump", out.display().to_string()));
        }
        for (n, _) in &resolve(expect, e).meta.xattrs {
            let out = scratch.path(&format!("x{i}-{}", plan.len()));
            cmds.push(format!("ea_get -f {} {q} {n}", out.display()));
            plan.push((path, e, "ea_get", format!("{}\u{0}{n}", out.display())));
        }
    }
    let outs = debugfs(img, &cmds);
    let mut links: BTreeMap<String, u32> = BTreeMap::new();
    for ((path, e, what, arg), out) in plan.iter().zip(&outs) {
        let e = resolve(expect, e);
        match *what {
            "stat" => {
                let mode = u32::from_str_radix(field(out, "Mode:").unwrap_or("x"), 8).unwrap();
                assert_eq!(
                    mode,
                    u32::from(e.meta.mode),
                    "debugfs mode of {path}: {out}"
                );
                assert_eq!(
                    field(out, "User:").unwrap().parse::<u32>().unwrap(),
                    e.meta.uid,
                    "{path}"
                );
                assert_eq!(
                    field(out, "Group:").unwrap().parse::<u32>().unwrap(),
                    e.meta.gid,
                    "{path}"
                );
                for (key, t) in [
                    ("atime:", e.meta.atime),
                    ("mtime:", e.meta.mtime),
                    ("ctime:", e.meta.ctime),
                    ("crtime:", e.meta.crtime),
                ] {
                    let raw = out
                        .lines()
                        .find_map(|l| l.trim_start().strip_prefix(key))
                        .and_then(|r| r.split_whitespace().next())
                        .unwrap_or_else(|| panic!("{key} in {out}"));
                    assert_eq!(parse_time(raw), (t.sec, t.nsec), "debugfs {key} of {path}");
                }
                let lc: u32 = field(out, "Links:").unwrap().parse().unwrap();
                links.insert((*path).clone(), lc);
                match &e.kind {
                    EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
                        let want = format!("Device major/minor number: {major:02}:{minor:02}");
                        assert!(out.contains(&want), "{path}: want {want} in {out}");
                    }
                    EntryKind::Symlink(t) => {
                        let t = t.to_str().unwrap();
                        if t.len() < 60 {
                            assert!(
                                out.contains(&format!("Fast link dest: \"{t}\"")),
                                "{path}: {out}"
                            );
                        }
                    }
                    _ => {}
                }
            }
            "dump" => {
                let EntryKind::File(d) = &e.kind else {
                    unreachable!()
                };
                assert!(
                    std::fs::read(arg).unwrap() == content_of(d),
                    "debugfs dump of {path}"
                );
            }
            _ => {
                let (file, name) = arg.split_once('\u{0}').unwrap();
                let want = &e.meta.xattrs.iter().find(|(n, _)| n == name).unwrap().1;
                let got = std::fs::read(file)
                    .unwrap_or_else(|_| panic!("ea_get {name} on {path}: {out}"));
                assert_eq!(&got, want, "xattr {name} of {path}");
            }
        }
    }
    // Link counts: files = number of names, directories = 2 + subdirectories.
    let mut names_per_target: BTreeMap<&str, u32> = BTreeMap::new();
    for (path, e) in expect {
        let target = match &e.kind {
            EntryKind::HardLink(t) => t.as_str(),
            _ => path.as_str(),
        };
        *names_per_target.entry(target).or_default() += 1;
    }
    for (path, e) in expect {
        let want = match &e.kind {
            EntryKind::Dir => {
                let prefix = if path == "/" {
                    String::new()
                } else {
                    path.clone()
                };
                2 + children(expect, path)
                    .iter()
                    .filter(|n| matches!(expect[&format!("{prefix}/{n}")].kind, EntryKind::Dir))
                    .count() as u32
            }
            EntryKind::HardLink(t) => names_per_target[t.as_str()],
            _ => names_per_target[path.as_str()],
        };
        assert_eq!(links[path], want, "link count of {path}");
    }
}
