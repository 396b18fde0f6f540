//! matcher (placeholder until the matcher branch lands)
/// Built-in rule sets.
pub fn known_rule_sets() -> &'static [&'static str] {
    &["sshd"]
}
