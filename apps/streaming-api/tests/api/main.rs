//! Black-box tests: the real server on port 0, called over HTTP.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The fault tests print what they measured (docs/reliability.md; `--no-capture` shows it).
#![allow(clippy::print_stdout)]

mod admin;
mod cinema;
mod cli;
mod config_keys;
mod deploy;
mod guide;
mod harness;
mod hostile;
mod instances;
mod kafka;
mod lifecycle;
mod load;
mod media;
mod movies;
mod objects;
mod observability;
mod openapi;
mod player;
mod postgres;
mod problems;
mod redis;
mod s3;
mod startup;
mod tracks;
mod users;
