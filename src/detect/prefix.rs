//! STUB: replaced by the detect2 branch.
#![allow(missing_docs, unused)]
use crate::event::{Finding, Observation};
use ipnet::IpNet;
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};
pub struct PrefixParams {
    pub min_addresses: u32,
    pub window: Duration,
    pub v4_len: u8,
    pub v6_len: u8,
    pub max_tracked: usize,
}
pub struct PrefixDetector;
impl PrefixDetector {
    pub fn new(jail: Arc<str>, p: PrefixParams) -> Self {
        todo!()
    }
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Option<Finding> {
        todo!()
    }
    pub fn forget(&mut self, addr: IpAddr) {
        todo!()
    }
    pub fn set_params(&mut self, p: PrefixParams) {
        todo!()
    }
    pub fn params(&self) -> &PrefixParams {
        todo!()
    }
    pub fn tracked(&self) -> usize {
        todo!()
    }
    pub fn evicted(&self) -> u64 {
        todo!()
    }
    pub fn sweep(&mut self, now: SystemTime) {
        todo!()
    }
    pub fn prefix_of(&self, addr: IpAddr) -> IpNet {
        todo!()
    }
    pub fn distinct(&self, prefix: IpNet, now: SystemTime) -> u32 {
        todo!()
    }
}
