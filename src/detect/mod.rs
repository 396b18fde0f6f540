//! STUB (replaced by the detect branch)
#![allow(missing_docs, unused)]
use crate::event::{Finding, Observation};
use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, SystemTime},
};
pub struct ThresholdParams {
    pub max_retry: NonZeroU32,
    pub find_time: Duration,
    pub max_tracked: usize,
}
pub struct ThresholdDetector {
    p: ThresholdParams,
}
impl ThresholdDetector {
    pub fn new(jail: Arc<str>, params: ThresholdParams) -> Self {
        todo!()
    }
    pub fn observe(&mut self, obs: &Observation, now: SystemTime) -> Option<Finding> {
        todo!()
    }
    pub fn forget(&mut self, addr: IpAddr) {
        todo!()
    }
    pub fn set_params(&mut self, params: ThresholdParams) {
        todo!()
    }
    pub fn params(&self) -> &ThresholdParams {
        todo!()
    }
    pub fn count(&self, addr: IpAddr, now: SystemTime) -> u32 {
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
}
