//! The `imgbuild` command line.
//!
//! Errors: one line on stderr, each cause once (`--json`: also a verdict
//! on stdout). SIGINT, SIGTERM and SIGHUP: what was being written is
//! removed, exit status 130. A closed stdout (`imgbuild … | head`): the
//! command ends quietly with status 0, as the producer of a pipeline whose
//! reader left.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use imgbuild::cli::{
    Cli, Command, CompletionsArgs, InspectArgs, ManArgs, MkfsArgs, Owner, RecipeArgs, parse_uuid,
};
use imgbuild::inspect;
use imgbuild::interrupt;
use imgbuild::pipeline::{self, BuildError, BuildOptions};
use imgbuild::recipe::{Recipe, RecipeError};

/// Exit status after a signal: 128 + SIGINT, as shells report an
/// interrupted command (and as `imgrun` does).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Recipe(a) if a.json);
    if let Err(e) = on_signals(json) {
        say(&format!("imgbuild: error: installing signal handlers: {e}"));
        return ExitCode::FAILURE;
    }
    let r = match cli.command {
        Command::Recipe(a) => recipe(a),
        Command::Mkfs(a) => mkfs(a),
        Command::Inspect(a) => inspect_cmd(a),
        Command::Man(a) => man(a),
        Command::Completions(a) => completions(a),
        Command::Cache(a) => cache_cmd(a),
    };
    // A signal's handler is removing what was being written (the errors
    // that causes are no news) and ends the process itself.
    if interrupt::is_set() {
        wait_for_the_signal_handler();
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away: nothing more to say, and nobody to say it to.
        Err(e) if e.chain().any(|c| c.is::<StdoutClosed>()) => ExitCode::SUCCESS,
        Err(e) => {
            report(json, &chain(&e), recipe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP: a thread removes what the run was writing (its
/// staging or check directory, see [`interrupt`]), says so once and exits
/// with [`INTERRUPTED`].
fn on_signals(json: bool) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let Some(sig) = signals.forever().next() else {
                return;
            };
            // Held until exit: nothing new is staged or committed.
            let removed = interrupt::clean_up();
            let name = match sig {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            let mut msg = format!("interrupted by {name}");
            if !removed.is_empty() {
                let paths: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
                msg.push_str(&format!("; removed {}", paths.join(", ")));
            }
            // Below a progress bar, if one is drawn.
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                say("");
            }
            report(json, &msg, None);
            #[allow(
                clippy::exit,
                reason = "the main thread may be blocked in a write; this is the way out"
            )]
            std::process::exit(i32::from(INTERRUPTED));
        })?;
    Ok(())
}

/// Parks the main thread for good: the signal handler exits the process.
fn wait_for_the_signal_handler() -> ! {
    loop {
        std::thread::park();
    }
}

/// The error and its causes, each said once: a cause whose text the
/// message already holds is skipped (as `imgrun` does).
fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// The recipe error in `e`'s chain, if it is one.
fn recipe_error(e: &anyhow::Error) -> Option<&RecipeError> {
    e.chain().find_map(|c| {
        c.downcast_ref::<RecipeError>()
            .or_else(|| match c.downcast_ref::<BuildError>() {
                Some(BuildError::Recipe(r)) => Some(r),
                _ => None,
            })
    })
}

/// Says `message` on stderr; with `--json`, also as a verdict on stdout:
/// `{"ok": false, "error", "file", "line", "column", "key"}`, the last four
/// from `place` (else null).
fn report(json: bool, message: &str, place: Option<&RecipeError>) {
    say(&format!("imgbuild: error: {message}"));
    if json {
        let line = place.map(|r| r.loc.line).filter(|l| *l > 0);
        let doc = Verdict {
            ok: false,
            error: message,
            file: place.map(|r| r.file.as_path()),
            line,
            column: line.and(place.map(|r| r.loc.column)),
            key: place.map(|r| r.key.as_str()).filter(|k| !k.is_empty()),
        };
        if let Ok(text) = serde_json::to_string_pretty(&doc) {
            let _ = print_out(format!("{text}\n").as_bytes());
        }
    }
}

/// The `--json` verdict of a failed command (fields in this order).
#[derive(Debug, serde::Serialize)]
struct Verdict<'a> {
    ok: bool,
    error: &'a str,
    file: Option<&'a Path>,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<&'a str>,
}

/// A line on stderr (a closed stderr is no reason to panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Stdout was closed by its reader (EPIPE).
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
struct StdoutClosed;

/// Writes `bytes` to stdout; a closed stdout is [`StdoutClosed`].
fn print_out(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => r.context("writing to stdout"),
    }
}

/// `--out` must be a directory, or not exist yet below one: said before
/// any work (and not as whatever `mkdir` makes of it).
fn check_out(out: &Path) -> Result<()> {
    for dir in out.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(m) => {
                let what = if m.is_file() {
                    "is a file, not a directory"
                } else {
                    "is not a directory"
                };
                if dir == out {
                    bail!("--out {}: {what}", out.display());
                }
                bail!("--out {}: {} {what}", out.display(), dir.display());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) => {}
            // Unreadable: the build says what it finds.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn recipe(a: RecipeArgs) -> Result<()> {
    use std::fmt::Write as _;
    let recipe = Recipe::load(&a.file)?;
    check_out(&a.out)?;
    let cache = imgbuild::sources::cache::locate(a.cache.as_deref())?;
    if a.verbose {
        say(&format!(
            "imgbuild: cache {} (from {})",
            cache.path.display(),
            cache.origin
        ));
    }
    let opts = BuildOptions {
        out_root: a.out.clone(),
        cache: cache.path,
        offline: a.offline,
        progress: !a.json && !a.quiet,
        epoch: pipeline::source_date_epoch()?,
        check: a.check,
        timings: a.verbose,
    };
    let result = pipeline::build(&recipe, &opts)?;
    for w in &result.warnings {
        say(&format!("imgbuild: warning: {w}"));
    }
    let Some(manifest) = &result.manifest else {
        // A check: everything a build would find wrong (inputs, modules,
        // sizes, conflicts), no image written or hashed.
        if !a.quiet {
            say(&format!(
                "{}: ok (guest {}, kernel {}); nothing written",
                a.file.display(),
                recipe.guest.name,
                result.kernel_version
            ));
        }
        if a.json {
            let doc = serde_json::json!({
                "recipe": a.file,
                "ok": true,
                "guest": recipe.guest.name,
                "kernel_version": result.kernel_version,
                "sizes": result.sizes.iter().map(|(f, n)| serde_json::json!({ "file": f, "size": n })).collect::<Vec<_>>(),
                "warnings": result.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            print_out(format!("{doc:#}\n").as_bytes())?;
        }
        return Ok(());
    };
    if a.json {
        return print_out(manifest.to_json().as_bytes());
    }
    if a.quiet {
        return Ok(());
    }
    let mut out = String::new();
    writeln!(
        out,
        "built {} (kernel {}) in {}",
        recipe.guest.name,
        manifest.kernel_version,
        result.out_dir.display()
    )?;
    for o in &manifest.outputs {
        writeln!(
            out,
            "  {:<14} {:>12} bytes  sha256 {}",
            o.file, o.size, o.sha256
        )?;
    }
    let rootfs_img = guest_contract::outputs::Output::RootImage.file_name(&recipe.guest.name);
    let storage = manifest.root_storage(&result.out_dir.join(rootfs_img).display().to_string());
    out.push_str(&imgbuild::xlcfg::start_hint(
        &storage,
        &result.out_dir,
        &result.out_dir.join(format!("{}.cfg", recipe.guest.name)),
    ));
    print_out(out.as_bytes())
}

/// `imgbuild cache list|clean`.
fn cache_cmd(a: imgbuild::cli::CacheArgs) -> Result<()> {
    use imgbuild::cli::CacheCommand;
    use imgbuild::recipe::units::human;
    use imgbuild::sources::cache::{self, TreeSource};
    use std::fmt::Write as _;
    let dir = cache::locate(a.cache.as_deref())?;
    let path = &dir.path;
    let mut out = String::new();
    match a.command {
        CacheCommand::List => {
            let l = cache::list(path).with_context(|| format!("reading {}", path.display()))?;
            let missing = if path.exists() {
                ""
            } else {
                ", does not exist yet"
            };
            writeln!(
                out,
                "cache {} (from {}{missing})",
                path.display(),
                dir.origin
            )?;
            writeln!(out, "packages: {}", l.packages.len())?;
            for p in &l.packages {
                writeln!(
                    out,
                    "  {} {} {} {} ({} bytes) sha256 {}",
                    p.package,
                    p.version,
                    p.architecture,
                    human(p.size),
                    p.size,
                    p.sha256
                )?;
            }
            writeln!(out, "unpacked trees: {}", l.trees.len())?;
            for t in &l.trees {
                let from = match &t.source {
                    TreeSource::Package(f) => format!("of {f}"),
                    TreeSource::Local => "of a local .deb".to_owned(),
                    TreeSource::Orphan => {
                        "unused: no cached package has its name and SHA-256".to_owned()
                    }
                };
                writeln!(out, "  {} {} ({from})", t.path.display(), human(t.size))?;
            }
            for (what, entries) in [
                ("apt's package-list cache", &l.apt),
                ("left over from interrupted runs", &l.partial),
                ("not imgbuild's (clean leaves it alone)", &l.other),
            ] {
                for e in entries {
                    writeln!(out, "{what}: {} {}", e.path.display(), human(e.size))?;
                }
            }
            writeln!(out, "total: {} ({} bytes)", human(l.total()), l.total())?;
        }
        CacheCommand::Clean(c) => {
            let keep = if c.keep_current {
                Some(current_packages(&c.recipes, path)?)
            } else {
                None
            };
            let r = cache::clean(path, keep.as_deref())
                .with_context(|| format!("cleaning {}", path.display()))?;
            for k in &r.kept {
                writeln!(out, "kept {}", k.display())?;
            }
            for p in &r.left_alone {
                writeln!(out, "left alone (not imgbuild's): {}", p.display())?;
            }
            let freed: u64 = r.removed.iter().map(|e| e.size).sum();
            writeln!(
                out,
                "removed {} entries, {} ({freed} bytes), from {}",
                r.removed.len(),
                human(freed),
                path.display()
            )?;
        }
    }
    print_out(out.as_bytes())
}

/// The cached packages that building `recipes` (none: the default inputs)
/// would use now: the candidates of the local package lists, through
/// metapackages, whose files in `cache` match the lists. Nothing is
/// downloaded.
fn current_packages(
    recipes: &[std::path::PathBuf],
    cache: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    use imgbuild::recipe::Input;
    use imgbuild::sources::{Apt, FetchError, FetchEvent, PackageSpec};
    let mut loaded = Vec::new();
    for r in recipes {
        loaded.push(Recipe::load(r)?);
    }
    if loaded.is_empty() {
        loaded.push(Recipe::parse(
            Path::new("(default inputs)"),
            "[guest]\nname = \"defaults\"\n",
        )?);
    }
    let apt = Apt::default().offline(true);
    let mut keep = Vec::new();
    for recipe in &loaded {
        for input in [&recipe.inputs.kernel.value, &recipe.inputs.busybox.value] {
            let Input::Package { name, version } = input else {
                continue;
            };
            let spec = PackageSpec {
                name: name.clone(),
                version: version.clone(),
            };
            let r = apt.fetch_deb(&spec, cache, &mut |ev| {
                if let FetchEvent::Cached { path, .. } = ev {
                    keep.push(path.clone());
                }
            });
            match r {
                Ok(_) => {}
                // Not (or differently) cached: nothing of it to keep.
                Err(e @ (FetchError::NotCached { .. } | FetchError::CacheMismatch { .. })) => {
                    say(&format!("imgbuild: note: {}: {e}", recipe.file.display()));
                }
                Err(e) => bail!(
                    "{}: cannot tell which packages are current, so nothing was removed: {e}",
                    recipe.file.display()
                ),
            }
        }
    }
    Ok(keep)
}

fn mkfs(a: MkfsArgs) -> Result<()> {
    use ext4fs_builder::{
        BlockSize, FsBuilder, InodeSpec, Options, OwnerPolicy, SizeSpec, TimePolicy,
    };
    let stdin = a.source == Path::new("-");
    if !stdin && !a.source.exists() {
        bail!("{}: no such directory or file", a.source.display());
    }
    let image = a.image.display();
    let Some(file_name) = a.image.file_name() else {
        bail!("{image}: not a file name");
    };
    let parent = match a.image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!("{image}: directory {} does not exist", parent.display());
    }
    if a.image.is_dir() {
        bail!("{image}: is a directory");
    }
    let block_size = BlockSize::from_bytes(a.block_size)
        .with_context(|| format!("--block-size {}: must be 1024, 2048 or 4096", a.block_size))?;
    let size = SizeSpec::parse(&a.size).with_context(|| format!("--size {}", a.size))?;
    let uuid = a
        .uuid
        .as_deref()
        .map(parse_uuid)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--uuid")?;
    if let Some(l) = &a.label {
        if l.len() > 16 {
            bail!(
                "--label {l:?} is {} bytes; an ext4 label holds at most 16",
                l.len()
            );
        }
    }
    let opts = Options {
        block_size,
        size,
        label: a.label.clone(),
        uuid,
        seed: a.seed,
        times: match (a.timestamp, pipeline::source_date_epoch_if_set()?) {
            (Some(t), _) => TimePolicy::Force(t),
            (None, Some(epoch)) => TimePolicy::Clamp(epoch),
            (None, None) => TimePolicy::Keep,
        },
        journal: !a.no_journal,
        resize_inode: !a.no_resize_inode,
        owner: match a.owner {
            Owner::Root => OwnerPolicy::Root,
            Owner::Keep => OwnerPolicy::Keep,
        },
        inodes: match (a.bytes_per_inode, a.inodes) {
            (Some(ratio), _) => InodeSpec::BytesPerInode(ratio),
            (None, Some(n)) => InodeSpec::Count(n),
            (None, None) => InodeSpec::Default,
        },
    };
    let mut fs = FsBuilder::new(opts);
    if !stdin && a.source.is_dir() {
        fs.add_tree(&a.source, "/")?;
    } else {
        let (archive, _) = imgbuild::tarball::open(&a.source)?;
        fs.add_tar(archive, "/")
            .with_context(|| format!("reading {}", source_name(&a.source)))?;
    }
    // Written in a staging directory next to the image, moved into place
    // when complete: a signal removes it, the next mkfs of this image
    // removes one a killed run left.
    let target = file_name.to_string_lossy();
    interrupt::remove_stale(parent, interrupt::Kind::Staging, Some(&target));
    let staging_dir = parent.join(interrupt::staging_name(&target, std::process::id()));
    let staging = interrupt::WorkDir::create(staging_dir.clone())
        .with_context(|| format!("creating {}", staging_dir.display()))?;
    let staged = staging.path().join(file_name);
    let mut progress = imgbuild::progress::Progress::new(true);
    progress.step(&format!("writing {image}"));
    let report = fs.write_with_progress(&staged, &mut |p| {
        progress.bytes(p.bytes_done, p.bytes_total);
    })?;
    staging
        .commit(|_| std::fs::rename(&staged, &a.image))
        .with_context(|| format!("moving the image to {image}"))?;
    drop(staging);
    progress.done();
    say(&format!(
        "{image}: {} bytes, {} blocks and {} of {} inodes used",
        report.size_bytes, report.blocks_used, report.inodes_used, report.inodes_count
    ));
    if let Some(min) = report.no_journal_below {
        say(&format!(
            "{image}: no journal: a filesystem under {min} bytes is too small for one"
        ));
    }
    Ok(())
}

fn inspect_cmd(a: InspectArgs) -> Result<()> {
    let entries = inspect::list(&a.image, &a.path, a.recursive)?;
    print_out(inspect::render(&entries, a.recursive).as_bytes())
}

fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let cmd = Cli::command();
    write_man(&cmd, "imgbuild", &a.dir)?;
    for sub in cmd.get_subcommands() {
        let name = format!("imgbuild-{}", sub.get_name());
        let sub = sub.clone().name(name.clone());
        write_man(&sub, &name, &a.dir)?;
    }
    Ok(())
}

fn write_man(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    // Into a buffer: clap_complete panics when it cannot write.
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "imgbuild", &mut buf);
    print_out(&buf)
}

/// How `imgbuild mkfs` names its source in messages.
fn source_name(p: &Path) -> String {
    if p == Path::new("-") {
        "standard input".to_owned()
    } else {
        p.display().to_string()
    }
}
