//! Drives the Xen backend directly (the nested-Xen CI test uses it when the
//! `imgrun` binary at hand has no `--xen` flag):
//! `xen_migrate_check [--json] [--dirty MB] [--threshold-ms N] DIR HOST...`
//! creates (or adopts) the guest on the first HOST and migrates it along the rest.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use imgrun::cancel::Cancel;
use imgrun::manifest::Manifest;
use imgrun::xen::{XenOptions, run_migrate_check};

fn main() -> ExitCode {
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xen_migrate_check: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let (mut json, mut dirty, mut threshold, mut rest) = (false, None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--dirty" => dirty = Some(args.next().context("--dirty MB")?.parse()?),
            "--threshold-ms" => {
                threshold = Some(args.next().context("--threshold-ms N")?.parse::<u64>()?)
            }
            _ => rest.push(a),
        }
    }
    if rest.len() < 3 {
        bail!(
            "usage: xen_migrate_check [--json] [--dirty MB] [--threshold-ms N] DIR SRC DST [HOST...]"
        );
    }
    let dir = PathBuf::from(rest.remove(0));
    let m = Manifest::load(&dir)?;
    let mut o = XenOptions::new(&rest[0], &rest[1]);
    o.route = rest;
    o.dirty_mb = dirty;
    if let Some(t) = threshold {
        o.threshold = Duration::from_millis(t);
    }
    let cancel = Cancel::on_signals().context("signal handlers")?;
    let report = run_migrate_check(&m, &o, &cancel, &mut |e| eprintln!("imgrun: {e}"))?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_table());
    }
    Ok(ExitCode::from(
        u8::try_from(report.exit_code()).unwrap_or(1),
    ))
}
