//! The `imgbuild` command line.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use imgbuild::cli::{
    Cli, Command, CompletionsArgs, InspectArgs, ManArgs, MkfsArgs, Owner, RecipeArgs, parse_uuid,
};
use imgbuild::inspect;
use imgbuild::pipeline::{self, BuildOptions};
use imgbuild::recipe::Recipe;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Recipe(a) => recipe(a),
        Command::Mkfs(a) => mkfs(a),
        Command::Inspect(a) => inspect_cmd(a),
        Command::Man(a) => man(a),
        Command::Completions(a) => completions(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgbuild: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn recipe(a: RecipeArgs) -> Result<()> {
    let recipe = Recipe::load(&a.file)?;
    let opts = BuildOptions {
        out_root: a.out.clone(),
        cache: a.cache.clone().unwrap_or_else(pipeline::default_cache),
        progress: !a.json,
        epoch: pipeline::source_date_epoch()?,
    };
    if a.check {
        // Everything a build would find wrong (inputs, modules, sizes), with
        // the outputs built in a scratch directory and thrown away.
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let opts = BuildOptions {
            out_root: scratch.path().to_path_buf(),
            ..opts
        };
        let result = pipeline::build(&recipe, &opts)?;
        if a.json {
            print!("{}", result.manifest.to_json());
        }
        eprintln!(
            "{}: ok (guest {}, kernel {}); nothing written",
            a.file.display(),
            recipe.guest.name,
            result.manifest.kernel_version
        );
        return Ok(());
    }
    let result = pipeline::build(&recipe, &opts)?;
    if a.json {
        print!("{}", result.manifest.to_json());
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "built {} (kernel {}) in {}",
            recipe.guest.name,
            result.manifest.kernel_version,
            result.out_dir.display()
        )?;
        for o in &result.manifest.outputs {
            writeln!(
                out,
                "  {:<14} {:>12} bytes  sha256 {}",
                o.file, o.size, o.sha256
            )?;
        }
        writeln!(
            out,
            "start it on a Xen host with: xl create {}",
            result
                .out_dir
                .join(format!("{}.cfg", recipe.guest.name))
                .display()
        )?;
    }
    Ok(())
}

fn mkfs(a: MkfsArgs) -> Result<()> {
    use ext4fs_builder::{BlockSize, FsBuilder, Options, OwnerPolicy, SizeSpec};
    if !a.dir.is_dir() {
        bail!("{}: not a directory", a.dir.display());
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
        timestamp: match a.timestamp {
            Some(t) => Some(t),
            None => Some(pipeline::source_date_epoch()?),
        },
        journal: !a.no_journal,
        owner: match a.owner {
            Owner::Root => OwnerPolicy::Root,
            Owner::Keep => OwnerPolicy::Keep,
        },
    };
    let mut fs = FsBuilder::new(opts);
    fs.add_tree(&a.dir, "/")?;
    let mut progress = imgbuild::progress::Progress::new(true);
    progress.step(&format!("writing {}", a.image.display()));
    let report = fs.write_with_progress(&a.image, &mut |p| {
        progress.bytes(p.bytes_done, p.bytes_total);
    })?;
    progress.done();
    eprintln!(
        "{}: {} bytes, {} blocks and {} inodes used",
        a.image.display(),
        report.size_bytes,
        report.blocks_used,
        report.inodes_used
    );
    Ok(())
}

fn inspect_cmd(a: InspectArgs) -> Result<()> {
    let entries = inspect::list(&a.image, &a.path, a.recursive)?;
    let mut out = std::io::stdout().lock();
    out.write_all(inspect::render(&entries, a.recursive).as_bytes())?;
    Ok(())
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
    clap_complete::generate(a.shell, &mut cmd, "imgbuild", &mut std::io::stdout());
    Ok(())
}
