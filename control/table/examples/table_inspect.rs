//! Prints a table file's capacities, generation, heartbeat and record counts: a debugging aid
//! for operators (`cargo run -p sluice-table --example table_inspect -- /dev/shm/sluice-x.table`).
//! With `--create` it creates the file with default capacities first.

fn main() {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let create = args.iter().any(|a| a == "--create");
    args.retain(|a| a != "--create");
    let path = args
        .first()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| sluice_table::default_path("default"));
    let t = if create {
        sluice_table::Table::create_or_open(&path, &Default::default())
    } else {
        sluice_table::Table::open(&path)
    };
    let t = match t {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let cfg = t.snapshot_config();
    println!("path        {}", path.display());
    println!("capacities  {:?}", t.capacities());
    println!("generation  {}", t.generation());
    println!("heartbeat   {} ms", t.last_dataplane_heartbeat());
    println!(
        "records     apps {} keys {} revocations {} templates {} forwarders {} commands {}",
        cfg.apps.len(),
        cfg.keys.len(),
        cfg.revocations.len(),
        cfg.templates.len(),
        cfg.forwarders.len(),
        cfg.commands.len()
    );
    println!("live        {} streams", t.all_stats().len());
    println!("events      head {}", t.event_cursor_at_head().next);
}
