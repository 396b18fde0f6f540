//! STUB: replaced by the detect2 branch.
#![allow(missing_docs, unused)]
use crate::event::{Finding, Observation};
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};
pub struct EnumerationParams {
    pub min_users: u32,
    pub window: Duration,
    pub max_tracked: usize,
}
pub struct EnumerationDetector;
impl EnumerationDetector {
    pub fn new(jail: Arc<str>, p: EnumerationParams) -> Self {
        todo!()
    }
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Option<Finding> {
        todo!()
    }
    pub fn forget(&mut self, addr: IpAddr) {
        todo!()
    }
    pub fn set_params(&mut self, p: EnumerationParams) {
        todo!()
    }
    pub fn params(&self) -> &EnumerationParams {
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
    pub fn distinct_users(&self, addr: IpAddr, now: SystemTime) -> u32 {
        todo!()
    }
}
