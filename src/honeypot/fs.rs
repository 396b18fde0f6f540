//! The per-session in-memory filesystem the decoy shell reads and writes.
//!
//! Each [`Shell`](super::shell::Shell) owns one [`Fs`]: it starts as a copy of a small but
//! realistic Debian 12 image built from the [`HostProfile`] (`/etc`, `/proc`, home
//! directories, `/tmp`, the binaries the emulated commands stand for) and then takes the
//! session's writes (`>`/`>>`, `mkdir`, `rm`, `chmod`, `chattr`, `touch`, `cp`, `mv`). Nothing
//! touches the real disk, and no session sees another's changes.
//!
//! Why shaped so:
//! - **Bounded.** A session may add at most [`MAX_BYTES`] of file data over the image and the
//!   tree holds at most [`MAX_NODES`] entries; past either, writes fail with
//!   [`FsError::NoSpace`] ("No space left on device"), as a full disk would answer.
//! - **Flat map of absolute paths.** A `BTreeMap` keyed by normalised absolute path keeps a
//!   directory's entries contiguous (`dir/` prefix range), so listing, recursive removal and
//!   renaming are range scans, and there are no parent pointers to keep consistent.
//! - **Real tools' words.** Errors carry the `strerror` text the coreutils would print
//!   ([`FsError::message`]), e.g. `chattr +i` makes `rm` answer "Operation not permitted".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::profile::HostProfile;

/// Most bytes of file data a session may add over the starting image.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Most entries (files and directories) the tree may hold.
pub const MAX_NODES: usize = 4096;
/// Longest path kept (bytes), as Linux's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;
/// Deepest entry that can be created (components below `/`). Deeper creation fails with
/// [`FsError::NameTooLong`]; since nothing deeper exists, resolving any path stops within
/// this many lookups.
pub const MAX_DEPTH: usize = 64;

/// Modification time of the image's own files (2025-10-03, when the "server" was installed).
const IMAGE_MTIME: i64 = 1_759_482_000;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(String),
    /// An installed program: its size only (reading it shows an ELF header).
    Bin(u64),
    /// A symbolic link to the given target (only the merged-`/usr` links at the root).
    Link(&'static str),
}

/// One file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File, directory, program or link.
    pub kind: Kind,
    /// Permission bits (`0o755`, ...), as `chmod` sets them.
    pub mode: u32,
    /// Owner's user name.
    pub owner: String,
    /// Set by `chattr +i`: the entry can be neither changed, removed nor renamed, and a
    /// directory gains no entries.
    pub immutable: bool,
    /// Last modification (Unix seconds).
    pub mtime: i64,
}

impl Node {
    /// Size as `ls -l` shows it.
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::Dir => 4096,
            Kind::File(s) => s.len() as u64,
            Kind::Bin(n) => *n,
            Kind::Link(t) => t.len() as u64,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// `ls -l`'s mode column, e.g. `drwxr-xr-x`.
    pub fn mode_string(&self) -> String {
        let mut s = String::with_capacity(10);
        s.push(match self.kind {
            Kind::Dir => 'd',
            Kind::Link(_) => 'l',
            _ => '-',
        });
        for shift in [6u32, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        if self.mode & 0o1000 != 0 {
            s.pop();
            s.push('t');
        }
        s
    }
}

/// Why an operation failed; [`FsError::message`] is what the real tools print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// `ENOENT`.
    NotFound,
    /// `ENOTDIR`.
    NotADirectory,
    /// `EISDIR`.
    IsADirectory,
    /// `EEXIST`.
    Exists,
    /// `EPERM` (immutable entries, kernel filesystems).
    NotPermitted,
    /// `ENOSPC`: the session's byte or node budget is spent.
    NoSpace,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `EINVAL` (e.g. moving a directory into itself).
    Invalid,
    /// `ENAMETOOLONG`: deeper than [`MAX_DEPTH`].
    NameTooLong,
}

impl FsError {
    /// The `strerror` text, e.g. "No such file or directory".
    pub fn message(self) -> &'static str {
        match self {
            FsError::NotFound => "No such file or directory",
            FsError::NotADirectory => "Not a directory",
            FsError::IsADirectory => "Is a directory",
            FsError::Exists => "File exists",
            FsError::NotPermitted => "Operation not permitted",
            FsError::NoSpace => "No space left on device",
            FsError::NotEmpty => "Directory not empty",
            FsError::Invalid => "Invalid argument",
            FsError::NameTooLong => "File name too long",
        }
    }
}

/// Join `path` onto `cwd` and normalise `.`, `..` and repeated slashes into an absolute path.
/// The merged-`/usr` links (`/bin`, `/sbin`, `/lib`, `/lib64`) resolve to their targets when
/// something below them is named. The result is cut at [`MAX_PATH`].
pub fn normalize(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined_cwd = if path.starts_with('/') { "" } else { cwd };
    for comp in joined_cwd.split('/').chain(path.split('/')) {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.len() > 1 {
        if let Some(first) = parts.first_mut() {
            *first = match *first {
                "bin" => "usr/bin",
                "sbin" => "usr/sbin",
                "lib" | "lib64" => "usr/lib",
                f => f,
            };
        }
    }
    let mut out = String::with_capacity(path.len() + cwd.len() + 1);
    for p in parts {
        if out.len() + p.len() + 1 > MAX_PATH {
            break;
        }
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The directory part of an absolute normalised path (`/` for `/x`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a path (`""` for `/`).
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Built images, per (profile, user): one per user name the decoy accepts, so a few.
type ImageCache = Vec<(HostProfile, String, Arc<BTreeMap<String, Node>>, usize)>;
static IMAGES: Mutex<ImageCache> = Mutex::new(Vec::new());
/// Images kept at most (user names come from accepted logins, but stay bounded anyway).
const MAX_IMAGES: usize = 32;

/// The image for `profile` and `user`, built once and shared.
fn image(profile: &HostProfile, user: &str) -> (Arc<BTreeMap<String, Node>>, usize) {
    let mut cache = IMAGES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, nodes, used)) = cache.iter().find(|(p, u, _, _)| p == profile && u == user) {
        return (nodes.clone(), *used);
    }
    let mut fs = Fs {
        nodes: Arc::new(BTreeMap::new()),
        used: 0,
        limit: usize::MAX,
        now: IMAGE_MTIME,
    };
    fs.build_image(profile, user);
    if cache.len() < MAX_IMAGES {
        cache.push((profile.clone(), user.to_owned(), fs.nodes.clone(), fs.used));
    }
    (fs.nodes, fs.used)
}

/// A session's view of the emulated host's files.
#[derive(Debug, Clone)]
pub struct Fs {
    /// Shared with every other session of the same image until this one first changes
    /// something (copy on write): an idle session costs a pointer, not a file tree.
    nodes: Arc<BTreeMap<String, Node>>,
    used: usize,
    limit: usize,
    now: i64,
}

impl Fs {
    /// The Debian 12 image `profile` describes, with a home directory for `user`.
    pub fn new(profile: &HostProfile, user: &str) -> Self {
        let (nodes, used) = image(profile, user);
        Self {
            nodes,
            used,
            limit: used + MAX_BYTES,
            now: IMAGE_MTIME,
        }
    }

    /// The tree, for a change (clones the shared image on the session's first change).
    fn nodes_mut(&mut self) -> &mut BTreeMap<String, Node> {
        Arc::make_mut(&mut self.nodes)
    }

    /// Set the time stamped on entries the session creates or changes (Unix seconds).
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Bytes of file data held now.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// The most bytes of file data the tree may hold (the image plus [`MAX_BYTES`]).
    pub fn limit_bytes(&self) -> usize {
        self.limit
    }

    /// Entries held now.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The entry at an absolute normalised path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.get(path).is_some_and(Node::is_dir)
    }

    /// A file's contents (an ELF header for programs).
    pub fn read(&self, path: &str) -> Result<&str, FsError> {
        self.check_parents(path)?;
        match self.get(path).map(|n| &n.kind) {
            None => Err(FsError::NotFound),
            Some(Kind::Dir) => Err(FsError::IsADirectory),
            Some(Kind::File(s)) => Ok(s),
            Some(Kind::Bin(_)) => Ok("\u{7f}ELF\u{2}\u{1}\u{1}"),
            Some(Kind::Link(_)) => Err(FsError::IsADirectory),
        }
    }

    /// The entries of directory `path` (name and node), in name order.
    pub fn list(&self, path: &str) -> Result<Vec<(&str, &Node)>, FsError> {
        match self.get(path) {
            None => return Err(FsError::NotFound),
            Some(n) if !n.is_dir() => return Err(FsError::NotADirectory),
            Some(_) => {}
        }
        Ok(self
            .subtree(path)
            .filter_map(|(k, n)| {
                let rest = k.get(prefix_len(path)..)?;
                (!rest.contains('/')).then_some((rest, n))
            })
            .collect())
    }

    /// `path` and, for a directory, every entry below it (for `chmod -R`, `chattr -R`).
    pub fn walk(&self, path: &str) -> Vec<String> {
        let mut out = vec![path.to_owned()];
        if self.is_dir(path) {
            out.extend(self.subtree(path).map(|(k, _)| k.clone()));
        }
        out
    }

    /// Write `data` to the file at `path`, replacing it or (with `append`) adding to its end;
    /// the file is created (mode 0644, owned by `owner`) if absent.
    pub fn write(
        &mut self,
        path: &str,
        data: &str,
        append: bool,
        owner: &str,
    ) -> Result<(), FsError> {
        if path == "/dev/null" {
            return Ok(());
        }
        if let Some(n) = self.get(path) {
            if n.is_dir() {
                return Err(FsError::IsADirectory);
            }
            if n.immutable || is_kernel_fs(path) {
                return Err(FsError::NotPermitted);
            }
            if append && !matches!(n.kind, Kind::File(_)) {
                return Err(FsError::NotPermitted);
            }
            let old = n.size() as usize;
            let (old_len, new_len) = if append {
                (old, old + data.len())
            } else {
                (old, data.len())
            };
            let after = self.used - old_len.min(self.used) + new_len;
            if after > self.limit {
                // `>` has already truncated the file when the write fails.
                if !append {
                    self.set_contents(path, String::new());
                }
                return Err(FsError::NoSpace);
            }
            let now = self.now;
            if let Some(n) = self.nodes_mut().get_mut(path) {
                match &mut n.kind {
                    Kind::File(s) if append => s.push_str(data),
                    k => *k = Kind::File(data.to_owned()),
                }
                n.mtime = now;
            }
            self.used = after;
            return Ok(());
        }
        self.check_new_entry(path)?;
        if self.used + data.len() > self.limit {
            return Err(FsError::NoSpace);
        }
        self.insert(path, Kind::File(data.to_owned()), 0o644, owner);
        Ok(())
    }

    /// Create directory `path`; with `parents`, create missing ancestors too and accept an
    /// existing directory (`mkdir -p`).
    pub fn mkdir(&mut self, path: &str, parents: bool, owner: &str) -> Result<(), FsError> {
        if let Some(n) = self.get(path) {
            return if parents && n.is_dir() {
                Ok(())
            } else {
                Err(FsError::Exists)
            };
        }
        if parents {
            // Each missing ancestor, from the root down (iterative: no recursion per level).
            for (i, _) in path.match_indices('/').skip(1) {
                let a = &path[..i];
                match self.get(a) {
                    Some(n) if n.is_dir() || matches!(n.kind, Kind::Link(_)) => {}
                    Some(_) => return Err(FsError::NotADirectory),
                    None => {
                        self.check_new_entry(a)?;
                        self.insert(a, Kind::Dir, 0o755, owner);
                    }
                }
            }
        }
        self.check_new_entry(path)?;
        self.insert(path, Kind::Dir, 0o755, owner);
        Ok(())
    }

    /// Create an empty file, or update an existing entry's time (`touch`).
    pub fn touch(&mut self, path: &str, owner: &str) -> Result<(), FsError> {
        let now = self.now;
        match self.nodes_mut().get_mut(path) {
            Some(n) if n.immutable => Err(FsError::NotPermitted),
            Some(n) => {
                n.mtime = now;
                Ok(())
            }
            None => self.write(path, "", false, owner),
        }
    }

    /// Remove `path`; a directory needs `recursive` (`rm -r`). With `recursive`, everything
    /// removable is removed and the entries that could not be are returned with the reason
    /// (an immutable entry keeps its ancestors too), as `rm -rf` reports each one.
    pub fn remove(&mut self, path: &str, recursive: bool) -> Vec<(String, FsError)> {
        let Some(node) = self.get(path) else {
            return vec![(path.to_owned(), FsError::NotFound)];
        };
        if path == "/" || is_kernel_fs(path) {
            return vec![(path.to_owned(), FsError::NotPermitted)];
        }
        if node.is_dir() && !recursive {
            return vec![(path.to_owned(), FsError::IsADirectory)];
        }
        let mut keys: Vec<String> = vec![path.to_owned()];
        if node.is_dir() {
            keys.extend(self.subtree(path).map(|(k, _)| k.clone()));
        }
        let mut failed = Vec::new();
        let mut kept: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        // Deepest first: a directory's entries sort after it.
        for k in keys.iter().rev() {
            let blocked = self.get(k).is_some_and(|n| n.immutable)
                || self.get(parent(k)).is_some_and(|n| n.immutable);
            if blocked {
                failed.push((k.clone(), FsError::NotPermitted));
                kept.insert(parent(k).to_owned());
            } else if kept.contains(k) {
                kept.insert(parent(k).to_owned());
            } else if let Some(n) = self.nodes_mut().remove(k) {
                self.used -= (n.size() as usize).min(self.used) * usize::from(is_counted(&n));
            }
        }
        failed.reverse();
        failed
    }

    /// Set permission bits.
    pub fn chmod(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        match self.nodes_mut().get_mut(path) {
            None => Err(FsError::NotFound),
            Some(n) if n.immutable => Err(FsError::NotPermitted),
            Some(n) => {
                n.mode = mode & 0o7777;
                Ok(())
            }
        }
    }

    /// Set or clear the immutable attribute (`chattr +i` / `-i`).
    pub fn set_immutable(&mut self, path: &str, on: bool) -> Result<(), FsError> {
        if is_kernel_fs(path) {
            return Err(FsError::NotPermitted);
        }
        match self.nodes_mut().get_mut(path) {
            None => Err(FsError::NotFound),
            Some(n) => {
                n.immutable = on;
                Ok(())
            }
        }
    }

    /// Copy the file or (with `recursive`) directory `src` to `dst` (both resolved: if `dst`
    /// is an existing directory the copy goes inside it).
    pub fn copy(
        &mut self,
        src: &str,
        dst: &str,
        recursive: bool,
        owner: &str,
    ) -> Result<(), FsError> {
        let Some(node) = self.get(src).cloned() else {
            return Err(FsError::NotFound);
        };
        let dst = self.target_in(src, dst);
        if dst == src || dst.starts_with(&format!("{}/", src.trim_end_matches('/'))) {
            return Err(FsError::Invalid);
        }
        match node.kind {
            Kind::Dir if !recursive => Err(FsError::IsADirectory),
            Kind::Dir => {
                self.mkdir(&dst, false, owner).or_else(|e| {
                    if e == FsError::Exists && self.is_dir(&dst) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                let entries: Vec<(String, Node)> = self
                    .subtree(src)
                    .map(|(k, n)| (k.clone(), n.clone()))
                    .collect();
                for (k, n) in entries {
                    let to = format!("{dst}{}", &k[src.len()..]);
                    match n.kind {
                        Kind::Dir => self.mkdir(&to, true, owner)?,
                        _ => self.copy_file(&n, &to, owner)?,
                    }
                }
                Ok(())
            }
            _ => self.copy_file(&node, &dst, owner),
        }
    }

    /// Move `src` to `dst` (into it, if `dst` is an existing directory).
    pub fn rename(&mut self, src: &str, dst: &str) -> Result<(), FsError> {
        let Some(node) = self.get(src) else {
            return Err(FsError::NotFound);
        };
        let dst = self.target_in(src, dst);
        if dst == src {
            return Ok(());
        }
        if dst.starts_with(&format!("{}/", src.trim_end_matches('/'))) || src == "/" {
            return Err(FsError::Invalid);
        }
        if node.immutable || is_kernel_fs(src) || self.get(parent(src)).is_some_and(|n| n.immutable)
        {
            return Err(FsError::NotPermitted);
        }
        if let Some(d) = self.get(&dst) {
            if d.immutable {
                return Err(FsError::NotPermitted);
            }
            if d.is_dir() {
                return Err(FsError::Exists);
            }
        } else {
            self.check_new_entry(&dst)?;
        }
        let mut keys: Vec<String> = vec![src.to_owned()];
        if node.is_dir() {
            keys.extend(self.subtree(src).map(|(k, _)| k.clone()));
        }
        if let Some(old) = self.nodes_mut().remove(&dst) {
            self.used -= (old.size() as usize).min(self.used) * usize::from(is_counted(&old));
        }
        for k in keys {
            if let Some(n) = self.nodes_mut().remove(&k) {
                self.nodes_mut()
                    .insert(format!("{dst}{}", &k[src.len()..]), n);
            }
        }
        Ok(())
    }

    fn copy_file(&mut self, node: &Node, dst: &str, owner: &str) -> Result<(), FsError> {
        match &node.kind {
            Kind::File(s) => self.write(dst, s, false, owner),
            Kind::Bin(n) => {
                self.write(dst, "", false, owner)?;
                if self.used + *n as usize > self.limit {
                    return Err(FsError::NoSpace);
                }
                self.set_kind(dst, Kind::Bin(*n));
                Ok(())
            }
            Kind::Dir | Kind::Link(_) => Err(FsError::IsADirectory),
        }?;
        if let Some(n) = self.nodes_mut().get_mut(dst) {
            n.mode = node.mode;
        }
        Ok(())
    }

    fn set_kind(&mut self, path: &str, kind: Kind) {
        if let Some(n) = self.nodes_mut().get_mut(path) {
            let old = n.size() as usize * usize::from(is_counted(n));
            n.kind = kind;
            let new = n.size() as usize * usize::from(is_counted(n));
            self.used = self.used - old.min(self.used) + new;
        }
    }

    fn set_contents(&mut self, path: &str, s: String) {
        self.set_kind(path, Kind::File(s));
    }

    /// `dst`, or `dst/<name of src>` when `dst` is an existing directory.
    fn target_in(&self, src: &str, dst: &str) -> String {
        if self.is_dir(dst) {
            normalize(dst, base_name(src))
        } else {
            dst.to_owned()
        }
    }

    /// Entries strictly below directory `path`.
    fn subtree<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let start = prefix.clone();
        self.nodes
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != "/")
    }

    /// Every ancestor of `path` must be a directory (checked from the root down, as the
    /// kernel resolves a path; iterative, so a deep path costs no stack).
    fn check_parents(&self, path: &str) -> Result<(), FsError> {
        for (i, _) in path.match_indices('/').skip(1) {
            match self.get(&path[..i]) {
                None => return Err(FsError::NotFound),
                Some(n) if !n.is_dir() && !matches!(n.kind, Kind::Link(_)) => {
                    return Err(FsError::NotADirectory);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether a new entry may be created at `path` (parent exists, is writable, budget left).
    fn check_new_entry(&self, path: &str) -> Result<(), FsError> {
        if path == "/" {
            return Err(FsError::Exists);
        }
        if path.matches('/').count() > MAX_DEPTH {
            return Err(FsError::NameTooLong);
        }
        self.check_parents(path)?;
        let p = parent(path);
        match self.get(p) {
            None => return Err(FsError::NotFound),
            Some(n) if !n.is_dir() => return Err(FsError::NotADirectory),
            Some(n) if n.immutable || is_kernel_fs(path) => return Err(FsError::NotPermitted),
            Some(_) => {}
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(FsError::NoSpace);
        }
        Ok(())
    }

    /// A node the session makes now.
    fn insert(&mut self, path: &str, kind: Kind, mode: u32, owner: &str) {
        self.put(path, kind, mode, owner, self.now);
    }

    /// A node of the installed image.
    fn image(&mut self, path: &str, kind: Kind, mode: u32, owner: &str) {
        self.put(path, kind, mode, owner, IMAGE_MTIME);
    }

    fn put(&mut self, path: &str, kind: Kind, mode: u32, owner: &str, mtime: i64) {
        let node = Node {
            kind,
            mode,
            owner: owner.to_owned(),
            immutable: false,
            mtime,
        };
        self.used += node.size() as usize * usize::from(is_counted(&node));
        self.nodes_mut().insert(path.to_owned(), node);
    }

    fn build_image(&mut self, p: &HostProfile, user: &str) {
        for d in [
            "/",
            "/boot",
            "/dev",
            "/dev/shm",
            "/etc",
            "/etc/apt",
            "/etc/cron.d",
            "/etc/cron.daily",
            "/etc/cron.hourly",
            "/etc/default",
            "/etc/init.d",
            "/etc/network",
            "/etc/ssh",
            "/etc/systemd",
            "/etc/systemd/system",
            "/home",
            "/lost+found",
            "/media",
            "/mnt",
            "/opt",
            "/proc",
            "/run",
            "/run/sshd",
            "/srv",
            "/sys",
            "/usr",
            "/usr/bin",
            "/usr/sbin",
            "/usr/lib",
            "/usr/local",
            "/usr/local/bin",
            "/usr/local/sbin",
            "/usr/share",
            "/var",
            "/var/backups",
            "/var/cache",
            "/var/lib",
            "/var/log",
            "/var/mail",
            "/var/spool",
            "/var/spool/cron",
            "/var/tmp",
            "/var/www",
        ] {
            self.image(d, Kind::Dir, 0o755, "root");
        }
        self.image("/root", Kind::Dir, 0o700, "root");
        self.image("/root/.ssh", Kind::Dir, 0o700, "root");
        self.image("/var/spool/cron/crontabs", Kind::Dir, 0o1730, "root");
        self.image("/tmp", Kind::Dir, 0o1777, "root");
        self.image("/var/tmp", Kind::Dir, 0o1777, "root");
        self.image("/dev/shm", Kind::Dir, 0o1777, "root");
        for (l, t) in [
            ("/bin", "usr/bin"),
            ("/sbin", "usr/sbin"),
            ("/lib", "usr/lib"),
            ("/lib64", "usr/lib64"),
        ] {
            self.image(l, Kind::Link(t), 0o777, "root");
        }
        self.image("/dev/null", Kind::File(String::new()), 0o666, "root");
        let bashrc = "# ~/.bashrc: executed by bash(1) for non-login shells.\n\nexport LS_OPTIONS='--color=auto'\neval \"$(dircolors)\"\nalias ls='ls $LS_OPTIONS'\n";
        let profile = "# ~/.profile: executed by Bourne-compatible login shells.\n\nif [ \"$BASH\" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n\nmesg n 2> /dev/null || true\n";
        for f in [".bashrc", ".profile"] {
            let text = if f == ".bashrc" { bashrc } else { profile };
            self.image(
                &format!("/root/{f}"),
                Kind::File(text.into()),
                0o644,
                "root",
            );
        }
        if user != "root" {
            let home = format!("/home/{user}");
            self.image(&home, Kind::Dir, 0o755, user);
            self.image(
                &format!("{home}/.bashrc"),
                Kind::File(bashrc.into()),
                0o644,
                user,
            );
            self.image(
                &format!("{home}/.profile"),
                Kind::File(profile.into()),
                0o644,
                user,
            );
            self.image(
                &format!("{home}/.bash_logout"),
                Kind::File(
                    "# ~/.bash_logout: executed by bash(1) when login shell exits.\n".into(),
                ),
                0o644,
                user,
            );
        }
        self.image(
            "/tmp/systemd-private-2b6f0c1e9d4a4b7f-systemd-logind.service-Qm3hFk",
            Kind::Dir,
            0o700,
            "root",
        );
        for path in [
            "/proc/cpuinfo",
            "/proc/meminfo",
            "/proc/version",
            "/proc/uptime",
            "/etc/hostname",
            "/etc/issue",
            "/etc/debian_version",
            "/etc/os-release",
            "/etc/passwd",
            "/etc/hosts.deny",
            "/etc/hosts.allow",
        ] {
            if let Some(mut text) = p.file(path) {
                if path == "/etc/passwd" && user != "root" {
                    text.push_str(&format!(
                        "{user}:x:1000:1000:{user},,,:/home/{user}:/bin/bash\n"
                    ));
                }
                let mode = if path.starts_with("/proc") {
                    0o444
                } else {
                    0o644
                };
                self.image(path, Kind::File(text), mode, "root");
            }
        }
        let extra: [(&str, String); 9] = [
            ("/proc/mounts", format!(
                "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\nudev /dev devtmpfs rw,nosuid,relatime,size={m}k,nr_inodes=498207,mode=755,inode64 0 0\ndevpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0\ntmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size={t}k,mode=755,inode64 0 0\n/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev,inode64 0 0\ntmpfs /run/lock tmpfs rw,nosuid,nodev,noexec,relatime,size=5120k,inode64 0 0\n",
                m = p.mem_kb / 2,
                t = p.mem_kb / 10,
            )),
            ("/proc/loadavg", "0.08 0.03 0.01 1/143 2718\n".into()),
            ("/etc/hosts", format!("127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n", h = p.hostname)),
            ("/etc/resolv.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\n".into()),
            ("/etc/shells", "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/rbash\n/usr/bin/rbash\n/bin/dash\n/usr/bin/dash\n".into()),
            ("/etc/group", "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\nsudo:x:27:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n".into()),
            ("/etc/crontab", "# /etc/crontab: system-wide crontab\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n".into()),
            ("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n".into()),
            ("/etc/motd", "\nThe programs included with the Debian GNU/Linux system are free software;\nthe exact distribution terms for each program are described in the\nindividual files in /usr/share/doc/*/copyright.\n\nDebian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\npermitted by applicable law.\n".into()),
        ];
        for (path, text) in extra {
            let mode = if path.starts_with("/proc") {
                0o444
            } else {
                0o644
            };
            self.image(path, Kind::File(text), mode, "root");
        }
        self.image("/etc/shadow", Kind::File("root:$y$j9T$Qm3h2kF0aW1u$Vt9xJ1cRkq0bX2YwZp8nLd4sH6gE7fA5uB3iC1oD9eM:20364:0:99999:7:::\ndaemon:*:20364:0:99999:7:::\nbin:*:20364:0:99999:7:::\nsys:*:20364:0:99999:7:::\nwww-data:*:20364:0:99999:7:::\nnobody:*:20364:0:99999:7:::\nsshd:*:20364:0:99999:7:::\n".into()), 0o640, "root");
        for (name, size) in BINARIES {
            let dir = if SBIN.contains(name) {
                "/usr/sbin"
            } else {
                "/usr/bin"
            };
            self.image(&format!("{dir}/{name}"), Kind::Bin(*size), 0o755, "root");
        }
    }
}

/// Programs installed on the image, with plausible sizes (Debian 12 amd64).
const BINARIES: &[(&str, u64)] = &[
    ("awk", 162_568),
    ("bash", 1_265_648),
    ("busybox", 2_128_056),
    ("cat", 43_936),
    ("chattr", 14_720),
    ("chmod", 64_448),
    ("chown", 72_672),
    ("chpasswd", 60_296),
    ("cp", 151_152),
    ("crontab", 47_464),
    ("curl", 288_480),
    ("cut", 47_480),
    ("dash", 125_560),
    ("date", 109_616),
    ("df", 97_640),
    ("echo", 35_664),
    ("env", 48_536),
    ("false", 31_504),
    ("free", 31_064),
    ("grep", 203_152),
    ("head", 47_480),
    ("hostname", 22_680),
    ("id", 47_480),
    ("ifconfig", 75_312),
    ("ip", 756_152),
    ("kill", 31_064),
    ("killall", 31_384),
    ("ls", 151_344),
    ("lsattr", 14_640),
    ("lscpu", 118_560),
    ("mkdir", 76_928),
    ("mv", 143_304),
    ("nohup", 35_664),
    ("nproc", 35_664),
    ("passwd", 68_248),
    ("pkill", 30_976),
    ("ps", 146_824),
    ("pwd", 39_760),
    ("rm", 72_704),
    ("sh", 125_560),
    ("sleep", 35_664),
    ("sudo", 281_624),
    ("tail", 64_160),
    ("tftp", 39_168),
    ("top", 129_072),
    ("touch", 97_648),
    ("true", 31_504),
    ("uname", 35_664),
    ("uptime", 14_664),
    ("useradd", 147_416),
    ("w", 22_872),
    ("wc", 43_976),
    ("wget", 523_344),
    ("which", 1_030),
    ("whoami", 35_696),
    ("ssh", 1_116_776),
    ("scp", 133_464),
    ("python3", 6_831_736),
    ("perl", 3_915_480),
];
/// The programs above that live in `/usr/sbin`.
const SBIN: &[&str] = &["chpasswd", "ifconfig", "useradd"];

fn prefix_len(dir: &str) -> usize {
    if dir == "/" { 1 } else { dir.len() + 1 }
}

/// `/proc` and `/sys` are kernel filesystems: nothing there is created, changed or removed.
fn is_kernel_fs(path: &str) -> bool {
    path.starts_with("/proc/") || path.starts_with("/sys/") || path == "/proc" || path == "/sys"
}

/// Whether a node's size counts against the byte budget (file contents only).
fn is_counted(n: &Node) -> bool {
    matches!(n.kind, Kind::File(_) | Kind::Bin(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Fs {
        Fs::new(&HostProfile::from_seed(7), "root")
    }

    #[test]
    fn sessions_share_the_image_until_one_changes_it() {
        let p = HostProfile::from_seed(11);
        let mut a = Fs::new(&p, "root");
        let b = Fs::new(&p, "root");
        assert!(
            Arc::ptr_eq(&a.nodes, &b.nodes),
            "an idle session copied the image"
        );
        a.write("/tmp/x", "mine", false, "root").unwrap();
        assert!(!Arc::ptr_eq(&a.nodes, &b.nodes));
        assert!(a.get("/tmp/x").is_some());
        assert!(
            b.get("/tmp/x").is_none(),
            "one session's write leaked into another"
        );
        assert!(Fs::new(&p, "root").get("/tmp/x").is_none());
        let other = Fs::new(&p, "admin");
        assert!(!Arc::ptr_eq(&other.nodes, &b.nodes));
    }

    #[test]
    fn normalize_joins_and_resolves() {
        assert_eq!(
            normalize("/root", ".ssh/authorized_keys"),
            "/root/.ssh/authorized_keys"
        );
        assert_eq!(normalize("/tmp", "../etc//./passwd"), "/etc/passwd");
        assert_eq!(normalize("/", ".."), "/");
        assert_eq!(normalize("/x", "/bin/ls"), "/usr/bin/ls");
        assert_eq!(normalize("/", "/bin"), "/bin");
    }

    #[test]
    fn image_has_the_profile_files() {
        let f = fs();
        assert!(f.read("/proc/cpuinfo").unwrap().contains("model name"));
        assert!(f.read("/etc/os-release").unwrap().contains("bookworm"));
        assert!(f.is_dir("/tmp"));
        assert_eq!(f.read("/etc"), Err(FsError::IsADirectory));
        assert_eq!(f.read("/etc/passwd/x"), Err(FsError::NotADirectory));
        assert!(f.list("/").unwrap().iter().any(|(n, _)| *n == "root"));
        assert!(!f.list("/").unwrap().iter().any(|(n, _)| n.contains('/')));
    }

    #[test]
    fn write_append_remove() {
        let mut f = fs();
        f.write("/tmp/a", "x", false, "root").unwrap();
        f.write("/tmp/a", "y", true, "root").unwrap();
        assert_eq!(f.read("/tmp/a").unwrap(), "xy");
        assert_eq!(
            f.write("/nope/a", "x", false, "root"),
            Err(FsError::NotFound)
        );
        assert!(f.remove("/tmp/a", false).is_empty());
        assert_eq!(f.read("/tmp/a"), Err(FsError::NotFound));
        assert_eq!(
            f.write("/proc/cpuinfo", "x", false, "root"),
            Err(FsError::NotPermitted)
        );
    }

    #[test]
    fn immutable_blocks_changes() {
        let mut f = fs();
        f.mkdir("/root/.ssh/x", true, "root").unwrap();
        f.write("/root/.ssh/authorized_keys", "k\n", false, "root")
            .unwrap();
        f.set_immutable("/root/.ssh/authorized_keys", true).unwrap();
        assert_eq!(
            f.write("/root/.ssh/authorized_keys", "j", true, "root"),
            Err(FsError::NotPermitted)
        );
        let failed = f.remove("/root/.ssh", true);
        assert_eq!(
            failed,
            vec![(
                "/root/.ssh/authorized_keys".to_owned(),
                FsError::NotPermitted
            )]
        );
        assert!(f.is_dir("/root/.ssh"));
        assert!(!f.is_dir("/root/.ssh/x"));
        f.set_immutable("/root/.ssh/authorized_keys", false)
            .unwrap();
        assert!(f.remove("/root/.ssh", true).is_empty());
        assert!(f.get("/root/.ssh").is_none());
    }

    #[test]
    fn budgets_give_no_space() {
        let mut f = fs();
        let chunk = "a".repeat(64 * 1024);
        let mut err = None;
        for i in 0..40 {
            if let Err(e) = f.write(&format!("/tmp/f{i}"), &chunk, false, "root") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(FsError::NoSpace));
        assert!(f.used_bytes() <= f.limit_bytes());
        let mut f = fs();
        let mut err = None;
        for i in 0..MAX_NODES {
            if let Err(e) = f.mkdir(&format!("/tmp/d{i}"), false, "root") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(FsError::NoSpace));
        assert_eq!(f.node_count(), MAX_NODES);
    }

    /// A path thousands of levels deep costs no recursion (sessions run on small task stacks).
    #[test]
    fn deep_paths_do_not_recurse() {
        let mut f = fs();
        let ok = "/tmp".to_owned() + &"/a".repeat(MAX_DEPTH - 1);
        assert_eq!(f.mkdir(&ok, true, "root"), Ok(()));
        let deep = "/tmp".to_owned() + &"/a".repeat(2000);
        let t = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(f.mkdir(&deep, true, "root"), Err(FsError::NameTooLong));
            assert_eq!(f.read(&format!("{deep}/x/y")), Err(FsError::NotFound));
            assert_eq!(
                f.write(&deep, "x", false, "root"),
                Err(FsError::NameTooLong)
            );
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert!(f.remove("/tmp/a", true).is_empty());
    }

    #[test]
    fn copy_and_rename() {
        let mut f = fs();
        f.mkdir("/tmp/d/e", true, "root").unwrap();
        f.write("/tmp/d/e/f", "z", false, "root").unwrap();
        f.copy("/tmp/d", "/tmp/c", true, "root").unwrap();
        assert_eq!(f.read("/tmp/c/e/f").unwrap(), "z");
        f.rename("/tmp/c", "/var/tmp").unwrap();
        assert_eq!(f.read("/var/tmp/c/e/f").unwrap(), "z");
        assert_eq!(f.rename("/tmp/d", "/tmp/d/e"), Err(FsError::Invalid));
        f.copy("/usr/bin/ls", "/tmp/ls2", false, "root").unwrap();
        assert_eq!(f.get("/tmp/ls2").unwrap().mode, 0o755);
    }
}
