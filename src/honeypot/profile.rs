//! The one machine the decoy pretends to be.
//!
//! Cowrie ships the same hostname (`svr04`), CPU and 4 GB of RAM everywhere, which makes every
//! install recognisable. Here the profile is chosen per install from a seed (derived from the
//! install's own host key, so it is stable across restarts and differs between installs), and
//! every command and `/proc` file reads the same values, so they agree with one another.

/// Hostname, kernel, CPU and memory of the emulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProfile {
    /// Short hostname shown by `hostname`, `uname -n` and the prompt.
    pub hostname: String,
    /// `uname -r`.
    pub kernel_release: &'static str,
    /// `uname -v`.
    pub kernel_version: &'static str,
    /// Online CPUs.
    pub cpus: u32,
    /// `/proc/cpuinfo` `model name`.
    pub cpu_model: &'static str,
    /// `/proc/cpuinfo` `model`.
    pub cpu_model_no: u32,
    /// `vendor_id`.
    pub cpu_vendor: &'static str,
    /// `MemTotal` in kB.
    pub mem_kb: u64,
    /// `SwapTotal` in kB.
    pub swap_kb: u64,
    /// Root filesystem size in GB.
    pub disk_gb: u64,
    /// Days of uptime shown by `uptime`, `w` and `/proc/uptime`.
    pub uptime_days: u64,
    /// What `ssh -V` names: the banner's software version (`OpenSSH_9.2p1 Debian-2+deb12u3`).
    pub ssh_version: String,
}

const HOST_PREFIXES: &[&str] = &[
    "web", "app", "srv", "node", "api", "db", "backend", "vps", "prod", "mail",
];
/// (model name, model number, vendor): CPUs common on cloud and hosting VMs.
const CPUS: &[(&str, u32, &str)] = &[
    (
        "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
        79,
        "GenuineIntel",
    ),
    (
        "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz",
        85,
        "GenuineIntel",
    ),
    (
        "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
        85,
        "GenuineIntel",
    ),
    ("AMD EPYC 7543 32-Core Processor", 1, "AuthenticAMD"),
    ("AMD EPYC-Rome Processor", 49, "AuthenticAMD"),
    ("Intel Core Processor (Skylake, IBRS)", 94, "GenuineIntel"),
];
/// Debian 12 kernels (release, version) as `uname` prints them.
const KERNELS: &[(&str, &str)] = &[
    (
        "6.1.0-26-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)",
    ),
    (
        "6.1.0-28-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
    ),
    (
        "6.1.0-31-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.128-1 (2025-02-07)",
    ),
];

impl HostProfile {
    /// A profile chosen deterministically from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let pick = |salt: u64, n: usize| -> usize {
            let x = seed
                .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            ((x ^ (x >> 31)) % n as u64) as usize
        };
        let (cpu_model, cpu_model_no, cpu_vendor) = CPUS[pick(1, CPUS.len())];
        let (kernel_release, kernel_version) = KERNELS[pick(2, KERNELS.len())];
        let cpus = [2u32, 2, 4, 4, 8][pick(3, 5)];
        // MemTotal is a little under the nominal size, as on a real VM.
        let gb = [2u64, 4, 8, 8, 16][pick(4, 5)];
        let mem_kb = gb * 1024 * 1024 - 120_000 - pick(5, 40_000) as u64;
        Self {
            hostname: format!(
                "{}-{:02}",
                HOST_PREFIXES[pick(6, HOST_PREFIXES.len())],
                1 + pick(7, 24)
            ),
            kernel_release,
            kernel_version,
            cpus,
            cpu_model,
            cpu_model_no,
            cpu_vendor,
            mem_kb,
            swap_kb: if pick(8, 2) == 0 { 0 } else { 1_048_572 },
            disk_gb: [25u64, 40, 50, 80, 160][pick(9, 5)],
            uptime_days: 3 + pick(10, 200) as u64,
            ssh_version: super::DEFAULT_BANNER
                .trim_start_matches("SSH-2.0-")
                .to_string(),
        }
    }

    /// Contents of the emulated files that commands read, or `None` if absent.
    pub fn file(&self, path: &str) -> Option<String> {
        Some(match path {
            "/proc/cpuinfo" => self.cpuinfo(),
            "/proc/meminfo" => self.meminfo(),
            "/proc/version" => format!(
                "Linux version {} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) {}\n",
                self.kernel_release, self.kernel_version
            ),
            "/proc/uptime" => {
                let up = self.uptime_days * 86_400 + 11_520;
                format!("{up}.27 {}.91\n", up * u64::from(self.cpus) * 97 / 100)
            }
            "/etc/hostname" => format!("{}\n", self.hostname),
            "/etc/issue" => "Debian GNU/Linux 12 \\n \\l\n\n".into(),
            "/etc/debian_version" => "12.8\n".into(),
            "/etc/os-release" => "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n".into(),
            "/etc/passwd" => "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nsync:x:4:65534:sync:/bin:/bin/sync\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsystemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\nmessagebus:x:100:107::/nonexistent:/usr/sbin/nologin\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n".into(),
            "/etc/hosts.deny" | "/etc/hosts.allow" => String::new(),
            _ => return None,
        })
    }

    fn cpuinfo(&self) -> String {
        let mut s = String::new();
        let mhz = if self.cpu_vendor == "AuthenticAMD" {
            "2794.750"
        } else {
            "2399.998"
        };
        for i in 0..self.cpus {
            s.push_str(&format!(
                "processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model_no}\nmodel name\t: {model}\nstepping\t: 1\nmicrocode\t: 0x1\ncpu MHz\t\t: {mhz}\ncache size\t: 16384 KB\nphysical id\t: 0\nsiblings\t: {cpus}\ncore id\t\t: {i}\ncpu cores\t: {cpus}\napicid\t\t: {i}\ninitial apicid\t: {i}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 13\nwp\t\t: yes\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid xsaveopt arat\nbogomips\t: 4799.99\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n",
                vendor = self.cpu_vendor,
                family = if self.cpu_vendor == "AuthenticAMD" { 25 } else { 6 },
                model_no = self.cpu_model_no,
                model = self.cpu_model,
                cpus = self.cpus,
            ));
        }
        s
    }

    fn meminfo(&self) -> String {
        let t = self.mem_kb;
        format!(
            "MemTotal:       {t:>8} kB\nMemFree:        {:>8} kB\nMemAvailable:   {:>8} kB\nBuffers:        {:>8} kB\nCached:         {:>8} kB\nSwapCached:            0 kB\nActive:         {:>8} kB\nInactive:       {:>8} kB\nSwapTotal:      {:>8} kB\nSwapFree:       {:>8} kB\nDirty:                 8 kB\nShmem:          {:>8} kB\n",
            t * 52 / 100,
            t * 78 / 100,
            t * 3 / 100,
            t * 25 / 100,
            t * 20 / 100,
            t * 15 / 100,
            self.swap_kb,
            self.swap_kb,
            t / 100,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_give_different_but_stable_hosts() {
        assert_eq!(HostProfile::from_seed(1), HostProfile::from_seed(1));
        let names: std::collections::HashSet<String> = (0..50)
            .map(|s| HostProfile::from_seed(s).hostname)
            .collect();
        assert!(names.len() > 10, "{names:?}");
        assert!(!names.contains("svr04"));
    }

    #[test]
    fn cpuinfo_lists_every_cpu() {
        let p = HostProfile::from_seed(3);
        let n = p
            .file("/proc/cpuinfo")
            .unwrap()
            .matches("model name")
            .count();
        assert_eq!(n as u32, p.cpus);
    }
}
