//! Benchmark: applying bans through `NftEnforcer::apply` (one `nft -f -` transaction per
//! batch) against the peers' way (one `nft add element` process per ban, as fail2ban's and
//! sshguard's nftables actions do).
//!
//! Runs in a private network namespace made at start (the host's ruleset is never touched),
//! so it needs root. Run with `cargo bench --bench enforce_apply`. Prints a markdown table
//! with medians; results go to docs/bench-enforce.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::sched::{CloneFlags, unshare};
use ravelin::decide::allowlist::{Allowlist, Permit};
use ravelin::enforce::{Change, Enforcer, NftEnforcer};

const NFT: &str = "/usr/sbin/nft";
const TABLE: &str = "ravelin";
const RUNS: usize = 5;
const PEER_BANS: u32 = 1_000;

/// `n` distinct targets: ~90% IPv4 addresses, every tenth an IPv6 address.
fn permits(n: u32, salt: u32) -> Vec<Permit> {
    let allow = Allowlist::new(&[], &[]);
    (0..n)
        .filter_map(|i| {
            let addr = if i % 10 == 0 {
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    salt as u16,
                    0,
                    0,
                    0,
                    (i >> 16) as u16,
                    i as u16,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(((11 + salt) << 24) + i))
            };
            allow.permit(IpNet::from(addr)).ok()
        })
        .collect()
}

fn adds(p: &[Permit]) -> Vec<Change<'_>> {
    p.iter()
        .map(|permit| Change::Add {
            permit,
            timeout: Some(Duration::from_secs(3600)),
        })
        .collect()
}

fn fresh() -> NftEnforcer {
    let _ = Command::new(NFT)
        .args(["delete", "table", "inet", TABLE])
        .stderr(Stdio::null())
        .status();
    let mut e = NftEnforcer::new(PathBuf::from(NFT), TABLE.to_string());
    if let Err(err) = e.setup() {
        eprintln!("setup failed: {err}");
        std::process::exit(1);
    }
    e
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn per_ban(d: Duration, n: usize) -> String {
    if n < 2 {
        return "-".into();
    }
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

/// Median over RUNS of applying `p` into a fresh table in batches of `batch`; checks the count.
fn bench_apply(p: &[Permit], batch: usize, idiom: bool) -> Duration {
    let changes = adds(p);
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let mut e = fresh();
        if idiom {
            e.force_delete_readd();
        }
        let start = Instant::now();
        for chunk in changes.chunks(batch) {
            e.apply(chunk).expect("apply");
        }
        times.push(start.elapsed());
        let n = e.list().expect("list").len();
        assert_eq!(n, p.len(), "every ban is in the kernel");
    }
    median(times)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("enforce_apply: needs root (it makes a private network namespace); skipped");
        return;
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
        eprintln!("enforce_apply: unshare(CLONE_NEWNET) failed: {e}; skipped");
        return;
    }
    let p10k = permits(10_000, 0);
    let p100k = permits(100_000, 1);
    let mut rows: Vec<(String, Duration, usize)> = vec![
        (
            "ravelin apply, 10k in one batch".into(),
            bench_apply(&p10k, usize::MAX, false),
            10_000,
        ),
        (
            "ravelin apply, 100k in one batch".into(),
            bench_apply(&p100k, usize::MAX, false),
            100_000,
        ),
        (
            "ravelin apply, 100k in batches of 1,000".into(),
            bench_apply(&p100k, 1_000, false),
            100_000,
        ),
        (
            "ravelin apply, 100k in one batch, portable add/delete/add idiom".into(),
            bench_apply(&p100k, usize::MAX, true),
            100_000,
        ),
    ];

    // Refresh all 100k (they already exist), list and verify with 100k present.
    let mut e = fresh();
    let changes = adds(&p100k);
    e.apply(&changes).expect("apply");
    let removes: Vec<Change<'_>> = p100k
        .iter()
        .map(|p| Change::Remove { target: p.target() })
        .collect();
    let (mut refresh, mut list, mut verify, mut unban) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let s = Instant::now();
        e.apply(&changes).expect("refresh");
        refresh.push(s.elapsed());
        let s = Instant::now();
        let n = e.list().expect("list").len();
        list.push(s.elapsed());
        assert_eq!(n, 100_000);
        let s = Instant::now();
        e.verify().expect("verify");
        verify.push(s.elapsed());
        let s = Instant::now();
        e.apply(&removes).expect("unban");
        unban.push(s.elapsed());
        assert!(e.list().expect("list").is_empty());
        e.apply(&changes).expect("re-ban");
    }
    rows.push((
        "ravelin apply, re-add (refresh) 100k existing".into(),
        median(refresh),
        100_000,
    ));
    rows.push((
        "ravelin list() with 100k bans".into(),
        median(list),
        100_000,
    ));
    rows.push((
        "ravelin apply, unban 100k in one batch".into(),
        median(unban),
        100_000,
    ));
    rows.push(("ravelin verify() with 100k bans".into(), median(verify), 1));

    // The peers' way: one `nft add element` process per ban.
    let peer = permits(PEER_BANS, 2);
    let mut times = Vec::new();
    for _ in 0..3 {
        let _ = fresh();
        let start = Instant::now();
        for p in &peer {
            let t = p.target();
            let set = if matches!(t, IpNet::V4(_)) {
                "ban4"
            } else {
                "ban6"
            };
            let elem = format!("{{ {} timeout 3600s }}", t.addr());
            let ok = Command::new(NFT)
                .args(["add", "element", "inet", TABLE, set, &elem])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "nft add element {elem}");
        }
        times.push(start.elapsed());
    }
    let peer_t = median(times);
    rows.push((
        format!("peers' way: one `nft add element` process per ban, {PEER_BANS}"),
        peer_t,
        PEER_BANS as usize,
    ));

    println!("| what | median of {RUNS} | per ban |");
    println!("|---|---:|---:|");
    for (what, d, n) in &rows {
        println!("| {what} | {} | {} |", ms(*d), per_ban(*d, *n));
    }
    let one_batch = rows[1].1.as_secs_f64() / 100_000.0;
    let peer_each = peer_t.as_secs_f64() / f64::from(PEER_BANS);
    println!();
    println!(
        "peers' way extrapolated to 100k bans: {:.0} s; ravelin one batch: {}; ratio {:.0}x per ban",
        peer_each * 100_000.0,
        ms(rows[1].1),
        peer_each / one_batch
    );
}
