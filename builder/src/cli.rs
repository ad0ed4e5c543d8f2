//! The `imgbuild` command line (clap derive). Also used by `imgbuild man`
//! and `imgbuild completions`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build Xen-migratable guest images from one TOML recipe, without root.
#[derive(Debug, Parser)]
#[command(name = "imgbuild", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build everything a recipe describes into out/<name>/ (rootfs.img,
    /// initrd.img, vmlinuz, <name>.cfg, manifest.json).
    Recipe(RecipeArgs),
    /// Write an ext4 image from a directory tree or a tar archive (rootless
    /// `mke2fs -t ext4 -d`).
    Mkfs(MkfsArgs),
    /// List files in an ext4 image with mode, owner and size.
    Inspect(InspectArgs),
    /// Write man pages into a directory.
    Man(ManArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Show or clean the package cache (downloaded .debs, unpacked trees).
    Cache(CacheArgs),
}

/// `imgbuild recipe`
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Only validate: the recipe, its inputs (fetched into the cache), its
    /// modules and sizes; the outputs are built in a scratch directory and
    /// discarded, nothing is written to --out.
    #[arg(long)]
    pub check: bool,
    /// Print the manifest (with --check: the verdict) as JSON on stdout; an
    /// error too, as {"ok": false, "error", "file", "line", "column", "key"}
    /// (the place of a recipe error, else null), besides the message on
    /// stderr.
    #[arg(long)]
    pub json: bool,
    /// Output root; files go to <OUT>/<name>/.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Quiet: no progress and no summary ("built …", "ok …"); warnings and
    /// errors still go to stderr.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,
    /// Verbose: also say where the cache is and how long each step took
    /// (on stderr).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Package cache [default: $IMGBUILD_CACHE, else $XDG_CACHE_HOME/imgbuild,
    /// else $HOME/.cache/imgbuild; `imgbuild cache list` shows which].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Build only from the cache: download nothing. An unpinned package
    /// means the candidate of the local package lists, and its .deb must be
    /// in the cache (verified by SHA-256).
    #[arg(long)]
    pub offline: bool,
    /// The recipe file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `imgbuild cache`
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache [default: $IMGBUILD_CACHE, else $XDG_CACHE_HOME/imgbuild,
    /// else $HOME/.cache/imgbuild].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// `imgbuild cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Where the cache is and what it holds: each package (version,
    /// architecture, size, sha256), the unpacked trees and their sizes, the
    /// total.
    List,
    /// Remove what imgbuild put in the cache (packages, unpacked trees,
    /// apt's package-list cache, leftovers); other files stay.
    Clean(CacheCleanArgs),
}

/// `imgbuild cache clean`
#[derive(Debug, Args)]
pub struct CacheCleanArgs {
    /// Keep the packages a build would use now (the candidates of the local
    /// package lists, through metapackages) and their unpacked trees: those
    /// of the RECIPEs, else of the default inputs (linux-image-amd64,
    /// busybox-static).
    #[arg(long)]
    pub keep_current: bool,
    /// Recipes whose current packages --keep-current keeps.
    #[arg(value_name = "RECIPE", requires = "keep_current")]
    pub recipes: Vec<PathBuf>,
}

/// Who owns files taken from the source tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Owner {
    /// Everything root:root.
    Root,
    /// Keep the source's uid/gid.
    Keep,
}

/// `imgbuild mkfs`
#[derive(Debug, Args)]
pub struct MkfsArgs {
    /// What goes in: a directory, or a tar archive (plain, gzip, xz or zstd,
    /// told by its contents, not its name; `-` reads one from standard
    /// input) whose owners, modes, devices, hard links, times, xattrs and
    /// sparse files are kept, so no root is needed to make a root filesystem.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Image file to write.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Filesystem size: "auto" or a size like 1G, 512M, or bytes.
    #[arg(long, default_value = "auto")]
    pub size: String,
    /// Volume label (at most 16 bytes).
    #[arg(long, short = 'L')]
    pub label: Option<String>,
    /// Filesystem UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).
    #[arg(long, short = 'U')]
    pub uuid: Option<String>,
    /// Ownership of files from a directory (an archive's always keep
    /// their numeric owners).
    #[arg(long, value_enum, default_value_t = Owner::Root)]
    pub owner: Owner,
    /// Do not create a journal.
    #[arg(long)]
    pub no_journal: bool,
    /// Reserve no GDT blocks for growing and make no resize inode (as
    /// `mke2fs -O ^resize_inode`). By default, as mke2fs, there is room for
    /// the group descriptors of a filesystem 1024 times the size (up to 2^32
    /// blocks), into which resize2fs and the kernel grow a filesystem on a
    /// bigger disk, also while it is mounted. Filesystems beyond 2^32 blocks
    /// or with meta_bg have none anyway.
    #[arg(long)]
    pub no_resize_inode: bool,
    /// Block size in bytes: 1024, 2048 or 4096.
    #[arg(long, short = 'b', default_value_t = 4096)]
    pub block_size: u32,
    /// Bytes of filesystem per inode, as `mke2fs -i`: 1024 to 67108864
    /// [default: mke2fs.conf's by size: 8192 under 3 MiB, 4096 under
    /// 512 MiB, 16384 under 4 TiB, 32768 under 16 TiB, else 65536]. The
    /// contents get the inodes they need regardless.
    #[arg(
        long,
        short = 'i',
        value_name = "BYTES_PER_INODE",
        conflicts_with = "inodes"
    )]
    pub bytes_per_inode: Option<u64>,
    /// Number of inodes, as `mke2fs -N` (rounded as mke2fs rounds it, to
    /// fill inode-table blocks). The contents get the inodes they need
    /// regardless.
    #[arg(long, short = 'N', value_name = "NUMBER_OF_INODES")]
    pub inodes: Option<u64>,
    /// Seed for the UUID and directory hash seed (reproducible images).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Every time of every inode and of the superblock (seconds since the
    /// epoch). Without it each entry keeps the source's atime, mtime and
    /// ctime, with nanoseconds (crtime = mtime), as mke2fs -d does; root,
    /// lost+found and the superblock get the time now. With
    /// $SOURCE_DATE_EPOCH set (and no --timestamp), times after it become it
    /// and it is "now" (reproducible builds).
    #[arg(long, allow_negative_numbers = true, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
}

/// `imgbuild inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ext4 image.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Path inside the image (a directory is listed, a file is shown).
    #[arg(value_name = "PATH", default_value = "/")]
    pub path: String,
    /// List directories recursively.
    #[arg(long, short = 'r')]
    pub recursive: bool,
}

/// `imgbuild man`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write imgbuild.1 and imgbuild-<command>.1 into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `imgbuild completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses a UUID in 8-4-4-4-12 hex form (dashes optional).
pub fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not a UUID (expected 32 hex digits like 0f2e…-…)"
        ));
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_mkfs() {
        let c = Cli::try_parse_from([
            "imgbuild",
            "mkfs",
            "d",
            "i.img",
            "--size",
            "1G",
            "--no-journal",
            "--owner",
            "keep",
            "--seed",
            "7",
        ])
        .unwrap();
        let Command::Mkfs(m) = c.command else {
            panic!("not mkfs")
        };
        assert_eq!(m.size, "1G");
        assert!(m.no_journal);
        assert!(!m.no_resize_inode);
        assert_eq!(m.owner, Owner::Keep);
        assert_eq!(m.seed, Some(7));
        assert_eq!((m.bytes_per_inode, m.inodes), (None, None));
        let c = Cli::try_parse_from(["imgbuild", "mkfs", "d", "i.img", "-i", "4096"]).unwrap();
        let Command::Mkfs(m) = c.command else {
            panic!("not mkfs")
        };
        assert_eq!(m.bytes_per_inode, Some(4096));
        let c = Cli::try_parse_from(["imgbuild", "mkfs", "d", "i.img", "--inodes", "9"]).unwrap();
        let Command::Mkfs(m) = c.command else {
            panic!("not mkfs")
        };
        assert_eq!(m.inodes, Some(9));
        assert!(Cli::try_parse_from(["imgbuild", "mkfs", "d", "i", "-i", "1", "-N", "1"]).is_err());
    }

    #[test]
    fn parses_cache_commands() {
        let c = Cli::try_parse_from(["imgbuild", "cache", "list", "--cache", "/c"]).unwrap();
        let Command::Cache(a) = c.command else {
            panic!("not cache")
        };
        assert_eq!(a.cache.as_deref(), Some(std::path::Path::new("/c")));
        assert!(matches!(a.command, CacheCommand::List));
        let c = Cli::try_parse_from([
            "imgbuild",
            "cache",
            "--cache",
            "/c",
            "clean",
            "--keep-current",
            "r.toml",
        ])
        .unwrap();
        let Command::Cache(CacheArgs {
            command: CacheCommand::Clean(k),
            cache,
        }) = c.command
        else {
            panic!("not cache clean")
        };
        assert!(k.keep_current);
        assert_eq!(k.recipes, [PathBuf::from("r.toml")]);
        assert!(cache.is_some());
        assert!(Cli::try_parse_from(["imgbuild", "cache", "clean", "r.toml"]).is_err());
        let c = Cli::try_parse_from(["imgbuild", "recipe", "--offline", "r.toml"]).unwrap();
        let Command::Recipe(r) = c.command else {
            panic!("not recipe")
        };
        assert!(r.offline);
    }

    #[test]
    fn parses_recipe_short_options() {
        let c = Cli::try_parse_from(["imgbuild", "recipe", "-q", "-o", "/srv", "r.toml"]).unwrap();
        let Command::Recipe(r) = c.command else {
            panic!("not recipe")
        };
        assert!(r.quiet && !r.verbose);
        assert_eq!(r.out, PathBuf::from("/srv"));
        let c = Cli::try_parse_from(["imgbuild", "recipe", "-v", "r.toml"]).unwrap();
        let Command::Recipe(r) = c.command else {
            panic!("not recipe")
        };
        assert!(r.verbose && !r.quiet);
        assert_eq!(r.out, PathBuf::from("out"));
        assert!(Cli::try_parse_from(["imgbuild", "recipe", "-q", "-v", "r.toml"]).is_err());
    }

    #[test]
    fn uuid() {
        let u = parse_uuid("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(u[0], 0x01);
        assert_eq!(u[15], 0xef);
        assert!(parse_uuid("xyz").is_err());
    }
}
