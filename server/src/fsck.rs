//! `chunkvault fsck`: checks a blob store against the metadata database
//! (`Engine::fsck`) and prints what it found. Exits non-zero when a blob was missing or had to
//! be quarantined, so a cron job notices.

use chunkvault_engine::fsck::FsckOptions;

use crate::build_state;
use crate::config::FsckArgs;

pub async fn run(args: Box<FsckArgs>) -> anyhow::Result<()> {
    let state = build_state(&args.serve).await?;
    let store = args
        .check_store
        .clone()
        .unwrap_or_else(|| args.serve.upload_store.clone());
    if !state.engine.files().has_store(&store) {
        anyhow::bail!("store {store} is not defined (--store NAME=URL)");
    }
    let opts = FsckOptions::new(store.clone())
        .sample(args.sample)
        .repair(args.repair)
        .grace(args.grace);
    let r = state.engine.fsck(&opts).await?;
    println!("store {store}: {} blob(s)", r.blobs);
    println!("checked: {} ({} bytes)", r.checked, r.bytes_checked);
    println!("quarantined now: {}", r.quarantined);
    println!("quarantined before: {}", r.already_quarantined);
    println!("missing: {}", r.missing);
    println!("orphan objects: {}", r.orphan_blobs);
    println!("orphan staging: {}", r.orphan_staging);
    println!("removed: {}", r.removed);
    if r.quarantined > 0 || r.missing > 0 {
        anyhow::bail!(
            "{} blob(s) quarantined, {} missing: see the log",
            r.quarantined,
            r.missing
        );
    }
    Ok(())
}
