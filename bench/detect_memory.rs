//! Memory and throughput of the threshold detector with one million tracked addresses.
//!
//! `cargo bench --bench detect_memory` (harness = false: a plain `main` that prints figures).
//!
//! Memory is measured two ways, because each can mislead alone: a counting global allocator
//! (bytes currently allocated: exact, but blind to allocator overhead and fragmentation) and
//! the resident-set delta from `/proc/self/statm` (what the kernel charges, but page-grained
//! and noisy). The workload is the one an attack wave produces: 900,000 IPv4 and 100,000 IPv6
//! addresses, each failing 1 to 4 times (below `max_retry` = 5, so all stay tracked),
//! interleaved as a log would deliver them, inside one `find_time`. A second phase pushes two
//! million more new addresses through the full table to show the cap holding (eviction
//! churn), and a third measures the firing path.
//!
//! For a ratio measured in the same run, phase 0 feeds the same workload to the obvious
//! implementation (`HashMap<IpAddr, Vec<SystemTime>>`, every failure kept), which is what the
//! detector's compact layout is meant to beat.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ravelin::detect::{ThresholdDetector, ThresholdParams};
use ravelin::event::Observation;

/// Counts the bytes currently allocated through it (and the peak), delegating to `System`.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const V4: u32 = 900_000;
const V6: u32 = 100_000;
const MAX_RETRY: u32 = 5;
const FIND: Duration = Duration::from_secs(600);
const CAP: usize = 1_000_000;
/// Simulated start: 2026-11-21.
const T0: u64 = 1_795_219_200;
/// Simulated observations per second of log time (keeps every phase inside one window).
const RATE: u64 = 20_000;

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}

fn allocated() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// splitmix64: a bijective mixer, so distinct inputs give distinct outputs.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `i`-th attacking address of wave `wave`: distinct across `i` and `wave`.
fn addr(wave: u32, i: u32) -> IpAddr {
    if i < V4 {
        // Multiplying by an odd constant is a bijection on u32: distinct, scattered IPv4.
        let n = wave.wrapping_mul(V4).wrapping_add(i);
        IpAddr::V4(Ipv4Addr::from(n.wrapping_mul(2_654_435_761)))
    } else {
        // One address per /64 in 2001:db8::/32 (wave and index in the prefix), with a
        // random interface identifier.
        let net = (0x2001_0db8_u128 << 96) | (u128::from(wave) << 88) | (u128::from(i) << 64);
        IpAddr::V6(Ipv6Addr::from(net | u128::from(mix(u64::from(i)))))
    }
}

/// Failures for address `i`: 1 to 4.
fn failures(i: u32) -> u32 {
    1 + (mix(u64::from(i) ^ 0xFA11) % 4) as u32
}

fn params() -> ThresholdParams {
    ThresholdParams {
        max_retry: NonZeroU32::new(MAX_RETRY).unwrap_or(NonZeroU32::MIN),
        find_time: FIND,
        max_tracked: CAP,
    }
}

fn at(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + n / RATE)
}

struct Phase {
    observations: u64,
    findings: u64,
    secs: f64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.observations as f64 / self.secs
    }
}

/// Phase 1: 1M distinct addresses, 1-4 failures each, interleaved in rounds.
fn fill(d: &mut ThresholdDetector, obs: &mut Observation) -> Phase {
    let (mut n, mut findings) = (0u64, 0u64);
    let start = Instant::now();
    for round in 0..4 {
        for i in 0..V4 + V6 {
            if failures(i) > round {
                obs.addr = addr(0, i);
                obs.time = at(n);
                findings += u64::from(d.observe(obs, obs.time).is_some());
                n += 1;
            }
        }
    }
    Phase {
        observations: n,
        findings,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Phase 0: the same workload as [`fill`] on the obvious map of time vectors. Returns the
/// phase with the bytes allocated and the RSS delta while the map is alive.
fn naive_fill(obs: &mut Observation) -> (Phase, usize, usize) {
    let (alloc0, rss0) = (allocated(), rss());
    let mut m: HashMap<IpAddr, Vec<SystemTime>> = HashMap::new();
    let (mut n, mut findings) = (0u64, 0u64);
    let start = Instant::now();
    for round in 0..4 {
        for i in 0..V4 + V6 {
            if failures(i) > round {
                obs.addr = addr(0, i);
                obs.time = at(n);
                let now = obs.time;
                let v = m.entry(obs.addr).or_default();
                v.push(obs.time);
                let in_window = v
                    .iter()
                    .filter(|t| now.duration_since(**t).is_ok_and(|d| d <= FIND))
                    .count();
                if in_window >= MAX_RETRY as usize {
                    m.remove(&obs.addr);
                    findings += 1;
                }
                n += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (alloc1, rss1) = (allocated(), rss());
    drop(m);
    (
        Phase {
            observations: n,
            findings,
            secs,
        },
        alloc1 - alloc0,
        rss1.saturating_sub(rss0),
    )
}

/// Phase 2: 2M more new addresses through the full table (sweep finds nothing expired, so
/// every insert at the cap goes through eviction).
fn churn(d: &mut ThresholdDetector, obs: &mut Observation, offset: u64) -> Phase {
    let (mut n, mut findings) = (0u64, 0u64);
    let start = Instant::now();
    for wave in 1..=2 {
        for i in 0..V4 + V6 {
            obs.addr = addr(wave, i);
            obs.time = at(offset + n);
            findings += u64::from(d.observe(obs, obs.time).is_some());
            n += 1;
        }
    }
    Phase {
        observations: n,
        findings,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Phase 3: 200k addresses failing 5 times in a row each: every fifth observation fires (the
/// firing path on cache-hot entries; the table never holds more than one address).
fn fire(obs: &mut Observation) -> Phase {
    let mut d = ThresholdDetector::new(Arc::from("sshd"), params());
    let (mut n, mut findings) = (0u64, 0u64);
    let start = Instant::now();
    for i in 0..200_000 {
        obs.addr = addr(9, i);
        for _ in 0..MAX_RETRY {
            obs.time = at(n);
            findings += u64::from(d.observe(obs, obs.time).is_some());
            n += 1;
        }
    }
    Phase {
        observations: n,
        findings,
        secs: start.elapsed().as_secs_f64(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn observation() -> Observation {
    Observation {
        time: at(0),
        addr: addr(0, 0),
        user: None,
        rule: Arc::from("sshd.failed-password"),
        source: Arc::from("auth"),
    }
}

/// Child process: memory of the naive map (a fresh process, so the RSS delta is its own).
fn memory_naive() {
    let (naive, alloc, rss) = naive_fill(&mut observation());
    let per = |bytes: usize| bytes as f64 / f64::from(V4 + V6);
    println!("phase 0: the same workload on HashMap<IpAddr, Vec<SystemTime>>");
    println!("  findings            {} (expected 0)", naive.findings);
    println!("  allocated           {:.1} bytes/address", per(alloc));
    println!("  RSS delta           {:.1} bytes/address", per(rss));
}

/// Child process: memory of the detector with 1M addresses, then at the cap under churn.
fn memory_detector() {
    let mut obs = observation();
    let (alloc0, rss0) = (allocated(), rss());
    PEAK.store(alloc0, Ordering::Relaxed);
    let mut d = ThresholdDetector::new(Arc::from("sshd"), params());
    let p = fill(&mut d, &mut obs);
    let (alloc1, rss1, peak1) = (allocated(), rss(), PEAK.load(Ordering::Relaxed));
    let tracked = d.tracked();
    let per = |bytes: usize| bytes as f64 / tracked as f64;
    println!(
        "phase 1: {} distinct addresses ({V4} IPv4 + {V6} IPv6), 1-4 failures each",
        V4 + V6
    );
    println!("  observations        {}", p.observations);
    println!("  findings            {} (expected 0)", p.findings);
    println!("  tracked             {tracked}");
    println!("  evicted             {}", d.evicted());
    println!(
        "  allocated           {:.1} MB = {:.1} bytes/address (peak while the table grows: {:.1})",
        (alloc1 - alloc0) as f64 / 1e6,
        per(alloc1 - alloc0),
        per(peak1 - alloc0)
    );
    println!(
        "  RSS delta           {:.1} MB = {:.1} bytes/address",
        rss1.saturating_sub(rss0) as f64 / 1e6,
        per(rss1.saturating_sub(rss0))
    );
    PEAK.store(alloc1, Ordering::Relaxed);
    let c = churn(&mut d, &mut obs, p.observations);
    let (alloc2, rss2, peak2) = (allocated(), rss(), PEAK.load(Ordering::Relaxed));
    println!(
        "phase 2: {} more new addresses at the cap ({CAP})",
        c.observations
    );
    println!("  tracked             {} (<= cap)", d.tracked());
    println!("  evicted             {}", d.evicted());
    println!(
        "  allocated           {:.1} MB (peak {:.1} MB: the eviction pass's scratch), RSS delta {:.1} MB",
        (alloc2 - alloc0) as f64 / 1e6,
        (peak2 - alloc0) as f64 / 1e6,
        rss2.saturating_sub(rss0) as f64 / 1e6
    );
}

/// Runs this executable again with `arg` and passes its output through.
fn child(arg: &str) {
    let out =
        std::env::current_exe().and_then(|exe| std::process::Command::new(exe).arg(arg).output());
    match out {
        Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => println!("could not run the {arg} child: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--child-naive") {
        return memory_naive();
    }
    if args.iter().any(|a| a == "--child-detector") {
        return memory_detector();
    }
    // Memory: each in a fresh process, so neither inherits the other's freed heap.
    child("--child-naive");
    child("--child-detector");

    // Throughput: interleaved runs in this process, median reported.
    let runs = 5;
    let mut obs = observation();
    let (mut naive_rates, mut fill_rates, mut churn_rates, mut fire_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let (naive, _, _) = naive_fill(&mut obs);
        let mut d = ThresholdDetector::new(Arc::from("sshd"), params());
        let p = fill(&mut d, &mut obs);
        let c = churn(&mut d, &mut obs, p.observations);
        drop(d);
        let f = fire(&mut obs);
        println!(
            "run {}: naive fill {:.2}, fill {:.2}, churn at cap {:.2}, firing {:.2} (M obs/s)",
            run + 1,
            naive.rate() / 1e6,
            p.rate() / 1e6,
            c.rate() / 1e6,
            f.rate() / 1e6
        );
        naive_rates.push(naive.rate());
        fill_rates.push(p.rate());
        churn_rates.push(c.rate());
        fire_rates.push(f.rate());
    }
    println!(
        "median of {runs}: naive fill {:.2}, fill {:.2}, churn at cap {:.2}, firing {:.2} (M obs/s)",
        median(naive_rates) / 1e6,
        median(fill_rates) / 1e6,
        median(churn_rates) / 1e6,
        median(fire_rates) / 1e6
    );
}
