//! `chunkvault migrate --from A --to B`: moves every blob of store A to store B (the Ceph →
//! OSS migration). Each blob is copied, verified at B and switched in the metadata database
//! before A's copy is deleted (`Transfers::transfer_blob`), so an interrupted run simply runs
//! again: moved blobs are no longer in A and are not listed. Progress goes to a bar on a
//! terminal, and to one line per blob otherwise (for logs and scripts).

use std::io::IsTerminal;

use chunkvault_engine::transfer::Transferred;
use chunkvault_engine::Sha1Hex;
use indicatif::{ProgressBar, ProgressStyle};

use chunkvault_server::build_state;
use chunkvault_server::config::MigrateArgs;

pub async fn run(args: Box<MigrateArgs>) -> anyhow::Result<()> {
    let state = build_state(&args.serve).await?;
    let engine = &state.engine;
    for name in [&args.from, &args.to] {
        if !engine.files().has_store(name) {
            anyhow::bail!("store {name} is not defined (--store NAME=URL)");
        }
    }
    if args.from == args.to {
        anyhow::bail!("--from and --to name the same store");
    }
    // What is there to move: counted first, for the bar and the dry run.
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut after: Option<Sha1Hex> = None;
    loop {
        let page = engine
            .files()
            .blobs_in_store(&args.from, after.as_ref(), 1000)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.sha1.clone());
        count += page.len() as u64;
        bytes += page.iter().map(|b| b.size).sum::<u64>();
    }
    println!(
        "{count} blob(s), {bytes} bytes in store {} to move to {}",
        args.from, args.to
    );
    if args.dry_run || count == 0 {
        return Ok(());
    }
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::new(bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("static template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let (mut moved, mut moved_bytes, mut skipped) = (0u64, 0u64, 0u64);
    let mut failures: Vec<(Sha1Hex, String)> = Vec::new();
    let mut after: Option<Sha1Hex> = None;
    loop {
        let page = engine
            .files()
            .blobs_in_store(&args.from, after.as_ref(), 100)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.sha1.clone());
        for blob in page {
            bar.set_message(blob.sha1.to_string());
            match engine.transfers().transfer_blob(&blob.sha1, &args.to).await {
                Ok(Transferred::Moved { bytes }) => {
                    moved += 1;
                    moved_bytes += bytes;
                    if !tty {
                        println!("moved {} {bytes}", blob.sha1);
                    }
                }
                Ok(other) => {
                    skipped += 1;
                    if !tty {
                        println!("skipped {} ({other:?})", blob.sha1);
                    }
                }
                Err(e) => {
                    if !tty {
                        println!("failed {} {e}", blob.sha1);
                    }
                    failures.push((blob.sha1.clone(), e.to_string()));
                }
            }
            bar.inc(blob.size);
        }
    }
    bar.finish_and_clear();
    println!(
        "migrated {moved} blob(s), {moved_bytes} bytes from {} to {}; {skipped} skipped; {} failed",
        args.from,
        args.to,
        failures.len()
    );
    for (sha1, e) in &failures {
        println!("  failed {sha1}: {e}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} blob(s) not migrated; run again to retry",
            failures.len()
        )
    }
}
