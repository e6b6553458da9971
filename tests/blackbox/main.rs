//! Black-box tests: the real `chunkvault` binary over real HTTP.

mod bad_input;
mod config;
mod dedup;
mod files;
mod support;
mod users;
