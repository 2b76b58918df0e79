//! (stub while the core is written)
#![allow(unused)]
use std::sync::Arc;
use std::time::Instant;
use turnstile_config::RealmConfig;
use wamp_proto::{Dict, Message};
use crate::core::peer::{PeerSender, TransportInfo};
use crate::core::router::ConnId;

#[derive(Debug)]
pub struct Realm;
impl Realm {
    pub fn new(_c: RealmConfig, _now: Instant) -> Self { Realm }
    pub fn handle_hello(&mut self, conn: ConnId, peer: PeerSender, info: Arc<TransportInfo>, details: Dict, len: usize, now: Instant) {}
    pub fn handle_message(&mut self, conn: ConnId, msg: Message, len: usize, now: Instant) {}
    pub fn handle_protocol_violation(&mut self, conn: ConnId, text: &str, now: Instant) {}
    pub fn handle_disconnected(&mut self, conn: ConnId, now: Instant) {}
    pub fn handle_shutdown(&mut self, now: Instant) {}
    pub fn handle_timeout(&mut self, now: Instant) {}
    pub fn poll_timeout(&mut self) -> Option<Instant> { None }
    pub fn is_drained(&self) -> bool { true }
}
