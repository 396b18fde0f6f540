//! STUB (replaced by the matcher branch)
#![allow(missing_docs, unused)]
use crate::event::RecordBody;
use std::{net::IpAddr, time::SystemTime};
pub struct Matcher;
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct UnknownRuleSet;
pub enum Outcome<'a> {
    Matched(Match<'a>),
    Unmatched { relevant: bool },
}
pub struct Match<'a> {
    pub rule: &'static str,
    pub addr: IpAddr,
    pub user: Option<&'a str>,
    pub time: Option<SystemTime>,
}
impl Matcher {
    pub fn new(rule_sets: &[String]) -> Result<Matcher, UnknownRuleSet> {
        todo!()
    }
    pub fn match_body<'a>(&self, body: &'a RecordBody, now: SystemTime) -> Outcome<'a> {
        todo!()
    }
}
pub fn known_rule_sets() -> &'static [&'static str] {
    &["sshd"]
}
