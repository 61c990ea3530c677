//! Black-box tests: the real server on port 0, called over HTTP.

mod harness;
mod objects;
mod problems;
mod tracks;
