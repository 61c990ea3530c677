//! What `cargo xtask test` needs besides the workspace, and which of it is
//! installed in the background while the workspace builds.
//!
//! On a first run most of the time goes into building tools (the broker,
//! the S3 server, cargo-deny) and installing Debian, Python and npm
//! packages. The packages wait mostly on the network and the disk, so they
//! install in the background beside the format check, clippy and the
//! builds: each item runs as `cargo xtask install ITEM` in a process of its
//! own, its output in `target/xtask/install-ITEM.log`, and the main thread
//! waits for it only where it needs it. The Rust tools build in the
//! foreground where they are first needed: built beside the workspace on
//! two cores they took longer in all than one after the other (measured in
//! docs/infrastructure.md). On a machine where everything is there
//! already, each item finds its tool and ends at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::steps::format_duration;
use crate::{deploy, infra, supply_chain, tools};

/// One thing to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// `cargo-deny`, for the supply-chain step.
    CargoDeny,
    /// The S3 server `s3s-fs`.
    S3Server,
    /// The Kafka-protocol broker `tansu`.
    Broker,
    /// Every Debian package a test or a server needs, in one `apt-get`.
    DebianPackages,
    /// The checkers from the Python and npm registries and Debian's promtool.
    Checkers,
}

/// Every item, in the order a first run needs them.
const ITEMS: [Item; 5] = [Item::CargoDeny, Item::DebianPackages, Item::Checkers, Item::S3Server, Item::Broker];

/// The items installed in the background, in order (the checkers need
/// Debian's pip and npm).
const BACKGROUND: [Item; 2] = [Item::DebianPackages, Item::Checkers];

impl Item {
    pub fn name(self) -> &'static str {
        match self {
            Self::CargoDeny => "cargo-deny",
            Self::S3Server => "s3-server",
            Self::Broker => "broker",
            Self::DebianPackages => "debian-packages",
            Self::Checkers => "checkers",
        }
    }

    pub fn all() -> impl Iterator<Item = Self> {
        ITEMS.into_iter()
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::all().find(|item| item.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::all().map(Self::name).collect();
            format!("unknown item {name:?}; the items are {}", names.join(", "))
        })
    }

    /// Installs this item in the foreground (what `cargo xtask install ITEM` runs).
    pub fn install(self) -> Result<(), String> {
        match self {
            Self::CargoDeny => supply_chain::CARGO_DENY.ensure().map(drop),
            Self::S3Server => infra::s3::SERVER.ensure().map(drop),
            Self::Broker => infra::kafka::BROKER.ensure().map(drop),
            Self::DebianPackages => tools::ensure_debian_packages(&debian_packages()),
            Self::Checkers => {
                deploy::install_checkers()?;
                infra::install_checkers()
            }
        }
    }
}

/// The Debian packages of every step, as `(command, package)` pairs.
fn debian_packages() -> Vec<(&'static str, &'static str)> {
    let mut packages = Vec::new();
    packages.extend_from_slice(crate::TEST_PACKAGES);
    packages.extend(infra::debian_packages());
    packages.extend_from_slice(tools::PYTHON_PACKAGES);
    packages.extend_from_slice(tools::NODE_PACKAGES);
    packages.sort_unstable();
    packages.dedup();
    packages
}

/// How one item ended.
#[derive(Clone)]
struct Outcome {
    ok: bool,
    took: Duration,
    log: PathBuf,
}

type Board = Arc<(Mutex<BTreeMap<Item, Outcome>>, Condvar)>;

/// The background installs at work; [`Background::wait`] blocks until an
/// item is done (or installs one that is not installed in the background).
pub struct Background {
    board: Board,
    /// Items already waited for (each is reported once).
    seen: Mutex<BTreeSet<Item>>,
}

impl Background {
    /// Starts the background installs. Their output goes to `target/xtask/install-*.log`.
    pub fn start(root: &Path) -> Result<Self, String> {
        let logs = root.join("target").join("xtask");
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let program = std::env::current_exe().map_err(|e| format!("finding xtask's own binary: {e}"))?;
        let board: Board = Arc::new((Mutex::new(BTreeMap::new()), Condvar::new()));
        let lane = Arc::clone(&board);
        std::thread::spawn(move || {
            for item in BACKGROUND {
                let outcome = install_in_child(&program, &logs, item);
                let (done, changed) = &*lane;
                if let Ok(mut done) = done.lock() {
                    done.insert(item, outcome);
                }
                changed.notify_all();
            }
        });
        let names: Vec<&str> = BACKGROUND.iter().map(|item| item.name()).collect();
        println!("==> installing in the background: {} (logs: target/xtask/install-*.log)", names.join(", "));
        Ok(Self { board, seen: Mutex::default() })
    }

    /// Waits for `item`. If its background install failed, says so and
    /// installs it here, where its output shows; an item not installed in
    /// the background is installed here.
    pub fn wait(&self, item: Item) -> Result<(), String> {
        if !self.seen.lock().map_err(|_| "the install board is poisoned")?.insert(item) {
            return Ok(());
        }
        if !BACKGROUND.contains(&item) {
            return item.install();
        }
        let started = Instant::now();
        let outcome = {
            let (done, changed) = &*self.board;
            let mut done = done.lock().map_err(|_| "the install board is poisoned")?;
            if !done.contains_key(&item) {
                println!(
                    "    waiting for {} (installing in the background; see target/xtask/install-{}.log)",
                    item.name(),
                    item.name()
                );
            }
            loop {
                if let Some(outcome) = done.get(&item) {
                    break outcome.clone();
                }
                done = changed.wait(done).map_err(|_| "the install board is poisoned")?;
            }
        };
        let waited = started.elapsed();
        if waited > Duration::from_secs(1) {
            println!("    waited {} for {}", format_duration(waited), item.name());
        }
        if outcome.ok {
            if outcome.took > Duration::from_secs(5) {
                println!("    {}: installed in {}", item.name(), format_duration(outcome.took));
            }
            return Ok(());
        }
        println!(
            "    installing {} in the background failed after {} (see {}); trying again here",
            item.name(),
            format_duration(outcome.took),
            outcome.log.display()
        );
        item.install()
    }

    /// Waits for every item.
    pub fn wait_all(&self) -> Result<(), String> {
        Item::all().try_for_each(|item| self.wait(item))
    }
}

fn install_in_child(program: &Path, logs: &Path, item: Item) -> Outcome {
    let started = Instant::now();
    let log = logs.join(format!("install-{}.log", item.name()));
    let ok = fs::File::create(&log)
        .and_then(|out| Ok((out.try_clone()?, out)))
        .and_then(|(out, err)| {
            Command::new(program).args(["install", item.name()]).stdin(Stdio::null()).stdout(out).stderr(err).status()
        })
        .is_ok_and(|status| status.success());
    Outcome { ok, took: started.elapsed(), log }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_named_once_and_parses_back() {
        let items: Vec<Item> = Item::all().collect();
        for item in &items {
            assert_eq!(Item::parse(item.name()), Ok(*item));
            assert_eq!(items.iter().filter(|other| *other == item).count(), 1, "{item:?} named twice");
        }
        assert!(Item::parse("everything").is_err_and(|e| e.contains("cargo-deny")));
    }

    #[test]
    fn one_apt_call_brings_the_servers_and_the_browser() {
        let packages = debian_packages();
        assert!(packages.iter().any(|(_, package)| *package == "chromium"));
        assert!(packages.iter().any(|(_, package)| *package == "redis-server"));
    }
}
