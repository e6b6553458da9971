//! Black-box tests: the real `chunkvault` binary over real HTTP.
#![allow(clippy::disallowed_methods)] // tests may block; the server may not

mod authz;
mod bad_input;
mod ci;
mod cli;
mod collision;
#[path = "../compat/mod.rs"]
mod compat;
mod config;
mod dedup;
mod faults;
mod files;
mod fsck;
mod ietf;
mod latency;
mod limits;
mod openapi;
mod ops;
mod proof;
mod races;
mod readme;
mod restart;
mod s3;
#[path = "../../engine/tests/common/mod.rs"]
mod scratch;
mod support;
mod transfer;
mod tus;
mod uploads;
mod users;
