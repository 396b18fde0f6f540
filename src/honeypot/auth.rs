//! Which credentials the decoy accepts.
//!
//! Accepting everything is how bots detect decoys (they try a random password first). The
//! default policy accepts only *plausible* weak pairs: a common user name with a password from
//! a short list of the passwords bots actually spray. Within that plausible set a keyed hash of
//! `(user, password)` decides, so each install accepts a different, stable subset: the same pair
//! always gets the same answer, a random pair is always refused, and a bot that learns one
//! install's accepted pair learns nothing about another's.

use sha2::{Digest, Sha256};

/// User names a real small server plausibly has.
const USERS: &[&str] = &[
    "root", "admin", "ubuntu", "debian", "user", "test", "oracle", "pi", "git", "deploy", "centos",
    "ftpuser", "guest", "support",
];

/// Passwords from the top of every public spray list.
const PASSWORDS: &[&str] = &[
    "123456",
    "password",
    "admin",
    "root",
    "12345678",
    "123456789",
    "1234",
    "12345",
    "qwerty",
    "111111",
    "1234567",
    "123123",
    "abc123",
    "admin123",
    "password1",
    "toor",
    "test",
    "ubuntu",
    "debian",
    "raspberry",
    "P@ssw0rd",
    "changeme",
    "000000",
    "1q2w3e4r",
    "root123",
    "Passw0rd",
    "qwerty123",
    "welcome",
    "letmein",
    "pass",
];

/// The acceptance policy: a secret key and the fraction of plausible pairs accepted, plus
/// pairs the operator adds.
#[derive(Clone)]
pub struct AuthPolicy {
    key: [u8; 32],
    /// Accept a plausible pair when `hash % 256 < threshold` (0: none).
    threshold: u8,
    /// Pairs always accepted (`[honeypot] accept_also`).
    also: Vec<(String, String)>,
}

impl std::fmt::Debug for AuthPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPolicy")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl AuthPolicy {
    /// A policy keyed by `key` (per install, kept in the state directory), accepting about
    /// a quarter of the plausible pairs.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            threshold: 64,
            also: Vec::new(),
        }
    }

    /// Accept this fraction (0.0 to 1.0) of the plausible pairs; 0 accepts none of them
    /// (record-only: every login fails, no shell is ever given).
    pub fn with_fraction(mut self, fraction: f64) -> Self {
        self.threshold = (fraction.clamp(0.0, 1.0) * 256.0).round().min(255.0) as u8;
        if fraction >= 1.0 {
            self.threshold = 255;
        }
        self
    }

    /// Also accept these exact `(user, password)` pairs.
    pub fn with_also(mut self, pairs: Vec<(String, String)>) -> Self {
        self.also = pairs;
        self
    }

    /// Should this `(user, password)` pair log in?
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        if self.also.iter().any(|(u, p)| u == user && p == password) {
            return true;
        }
        if self.threshold == 0 || !USERS.contains(&user) || !PASSWORDS.contains(&password) {
            return false;
        }
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u32).to_be_bytes());
        h.update(user.as_bytes());
        h.update((password.len() as u32).to_be_bytes());
        h.update(password.as_bytes());
        let d = h.finalize();
        d[0] < self.threshold || self.threshold == 255
    }

    /// One plausible pair this policy accepts for `user`, if any (for tests and operators).
    pub fn an_accepted_password(&self, user: &str) -> Option<&'static str> {
        PASSWORDS.iter().copied().find(|p| self.accepts(user, p))
    }

    /// One plausible pair this policy refuses for `user` (for tests).
    pub fn a_refused_password(&self, user: &str) -> Option<&'static str> {
        PASSWORDS.iter().copied().find(|p| !self.accepts(user, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pair_same_answer_and_random_pairs_refused() {
        let p = AuthPolicy::new([7; 32]);
        for u in USERS {
            for pw in PASSWORDS {
                assert_eq!(p.accepts(u, pw), p.accepts(u, pw));
            }
        }
        assert!(!p.accepts("root", "Xk9#v2LqT7"));
        assert!(!p.accepts("phil", "123456"));
        assert!(!p.accepts("", ""));
    }

    #[test]
    fn accepts_some_but_not_most_plausible_pairs() {
        let p = AuthPolicy::new([1; 32]);
        let total = USERS.len() * PASSWORDS.len();
        let accepted = USERS
            .iter()
            .flat_map(|u| PASSWORDS.iter().map(move |pw| (u, pw)))
            .filter(|(u, pw)| p.accepts(u, pw))
            .count();
        assert!(
            accepted > total / 10 && accepted < total / 2,
            "{accepted}/{total}"
        );
        assert!(p.an_accepted_password("root").is_some());
        assert!(p.a_refused_password("root").is_some());
    }

    #[test]
    fn different_keys_accept_different_subsets() {
        let a = AuthPolicy::new([1; 32]);
        let b = AuthPolicy::new([2; 32]);
        let differs = PASSWORDS
            .iter()
            .any(|pw| a.accepts("root", pw) != b.accepts("root", pw));
        assert!(differs);
    }

    #[test]
    fn fraction_zero_refuses_all_and_extra_pairs_always_work() {
        let none = AuthPolicy::new([7; 32]).with_fraction(0.0);
        assert!(USERS.iter().all(|u| none.an_accepted_password(u).is_none()));
        let all = AuthPolicy::new([7; 32]).with_fraction(1.0);
        assert!(USERS.iter().all(|u| all.a_refused_password(u).is_none()));
        let p = AuthPolicy::new([7; 32])
            .with_fraction(0.0)
            .with_also(vec![("admin".into(), "Summer2026!".into())]);
        assert!(p.accepts("admin", "Summer2026!"));
        assert!(!p.accepts("admin", "summer2026!"));
        assert!(!p.accepts("root", "Summer2026!"));
    }
}
