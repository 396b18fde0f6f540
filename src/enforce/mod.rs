//! STUB (replaced by the enforce branch)
#![allow(missing_docs, unused)]
use crate::event::Permit;
use ipnet::IpNet;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
pub enum Change<'a> {
    Add {
        permit: &'a Permit,
        timeout: Option<Duration>,
    },
    Remove {
        target: IpNet,
    },
}
pub struct KernelElement {
    pub target: IpNet,
    pub expires_in: Option<Duration>,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct EnforceError;
pub trait Enforcer: Send {
    fn name(&self) -> &'static str;
    fn setup(&mut self) -> Result<(), EnforceError>;
    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError>;
    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError>;
    fn verify(&mut self) -> Result<(), EnforceError>;
}
pub struct NftEnforcer;
impl NftEnforcer {
    pub fn new(nft: PathBuf, table: String) -> Self {
        todo!()
    }
}
impl Enforcer for NftEnforcer {
    fn name(&self) -> &'static str {
        todo!()
    }
    fn setup(&mut self) -> Result<(), EnforceError> {
        todo!()
    }
    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError> {
        todo!()
    }
    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError> {
        todo!()
    }
    fn verify(&mut self) -> Result<(), EnforceError> {
        todo!()
    }
}
pub struct LogEnforcer;
impl LogEnforcer {
    pub fn new() -> Self {
        todo!()
    }
}
impl Enforcer for LogEnforcer {
    fn name(&self) -> &'static str {
        todo!()
    }
    fn setup(&mut self) -> Result<(), EnforceError> {
        todo!()
    }
    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError> {
        todo!()
    }
    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError> {
        todo!()
    }
    fn verify(&mut self) -> Result<(), EnforceError> {
        todo!()
    }
}
pub fn probe_nft(nft: &Path) -> Result<(), EnforceError> {
    todo!()
}
