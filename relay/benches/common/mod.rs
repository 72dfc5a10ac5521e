//! What the throughput and latency benchmarks share: the relay binary, the outbox rows they write,
//! the header describing the machine and build, and reading a process's CPU time and peak RSS.

use std::path::Path;

pub const RELAY: &str = env!("CARGO_BIN_EXE_outbox-relay");
pub const AGGREGATE_TYPE: &str = "order";
pub const AGGREGATES: i64 = 50;
pub const MIB: f64 = 1024.0 * 1024.0;

/// One transaction's rows, `$1..=$2` as sequence numbers. Sequence numbers run on across
/// transactions, so every payload differs, and the latency benchmark finds an event's transaction
/// from the `sequence` in its payload.
pub const INSERT: &str = "
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
SELECT gen_random_uuid(), $4, 'order-' || (g % $3), 'OrderChanged',
       jsonb_build_object(
           'orderId', 'order-' || (g % $3), 'sequence', g, 'customerId', 'customer-' || (g % 997),
           'status', 'CONFIRMED', 'currency', 'EUR', 'totalCents', 10000 + g % 90000,
           'lines', jsonb_build_array(
               jsonb_build_object('sku', 'SKU-' || lpad((g % 500)::text, 5, '0'), 'quantity', 1 + g % 3, 'priceCents', 1999))),
       jsonb_build_object('correlation_id', gen_random_uuid()::text)
FROM generate_series($1::int8, $2::int8) AS g";

/// `BENCH_RELAY_ARGS`: extra flags for `outbox-relay run`, e.g. `--batch-size 500`.
pub fn relay_args() -> Vec<String> {
    std::env::var("BENCH_RELAY_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Prints the CPU, load and which builds run, so that a table carries what it was measured on.
pub fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let bench_profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // cargo puts each profile's binaries in target/<profile>/, so the directory names the build.
    let relay_profile = Path::new(RELAY)
        .parent()
        .and_then(Path::file_name)
        .map_or("unknown".into(), |d| d.to_string_lossy().into_owned());
    println!("machine: nproc {cpus}, {model}, load average {}", load());
    println!("build: bench {bench_profile}, relay binary {relay_profile} ({RELAY})");
}

pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// User plus system CPU seconds a live process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields are counted after the command name, which is in parentheses and may hold spaces;
    // utime and stime (fields 14 and 15) are in USER_HZ, which is 100 on Linux.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A live process's peak resident set size in bytes (`VmHWM`).
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Bytes as MiB with one decimal, or `-`.
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1}", b as f64 / MIB))
}
