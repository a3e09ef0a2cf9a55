//! Finding the view service's leader (Q2), shared by the server and coordinator cores.
//!
//! A role knows the view service as a list of node addresses (`--viewserver a,b,c`). It sends
//! to one of them, its *target*. The target changes when:
//! - the target answers `NotLeader { leader: Some(l) }`: the target becomes `l`;
//! - the target answers `NotLeader { leader: None }` (no leader known, an election is under
//!   way): the next address of the list;
//! - [`MAX_UNANSWERED`] requests in a row went to the target without any answer (the node is
//!   down, stalled or cut off): the next address of the list.
//!
//! Any answer from the target resets the count. Answers from a node that is not the target
//! (a late reply from the previous one) change nothing.

use crate::ids::VsAddr;
use crate::message::Endpoint;

/// The one view-service address a core uses until its driver sets the real list (unit tests).
pub const DEFAULT_VIEW_SERVICE: &str = "viewservice";

/// Requests sent to the target without an answer before moving on to the next node.
pub const MAX_UNANSWERED: u32 = 2;

/// Which view-service node to ask.
#[derive(Clone, Debug)]
pub struct Locator {
    addrs: Vec<VsAddr>,
    target: VsAddr,
    unanswered: u32,
    moves: u64,
}

impl Locator {
    /// A locator over `addrs`, starting with the first.
    ///
    /// # Panics
    /// If `addrs` is empty (configurations validate that it is not).
    pub fn new(addrs: Vec<VsAddr>) -> Locator {
        let target = addrs
            .first()
            .cloned()
            .expect("at least one view-service address");
        Locator {
            addrs,
            target,
            unanswered: 0,
            moves: 0,
        }
    }

    /// Where the next request goes.
    pub fn target(&self) -> Endpoint {
        Endpoint::ViewService(self.target.clone())
    }

    /// The target's address.
    pub fn target_addr(&self) -> &VsAddr {
        &self.target
    }

    /// Every configured address.
    pub fn addrs(&self) -> &[VsAddr] {
        &self.addrs
    }

    /// How many times the target changed.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// Records a request sent to the target; moves on after too many without answers.
    pub fn sent(&mut self) {
        self.unanswered += 1;
        if self.unanswered > MAX_UNANSWERED {
            self.advance();
        }
    }

    /// Records an answer from `from`.
    pub fn answered(&mut self, from: &VsAddr) {
        if *from == self.target {
            self.unanswered = 0;
        }
    }

    /// The transport could not reach `addr` (connection refused or dropped): if it is the
    /// target, move on to the next node without waiting for unanswered requests to pile up.
    pub fn unreachable(&mut self, addr: &VsAddr) {
        if *addr == self.target {
            self.advance();
        }
    }

    /// `from` says it is not the leader and names the one it knows, if any.
    pub fn redirected(&mut self, from: &VsAddr, leader: Option<VsAddr>) {
        if *from != self.target {
            return;
        }
        match leader {
            Some(leader) if leader != self.target => {
                self.target = leader;
                self.unanswered = 0;
                self.moves += 1;
            }
            // "I lead but am not ready yet": keep asking it.
            Some(_) => self.unanswered = 0,
            None => self.advance(),
        }
    }

    fn advance(&mut self) {
        let next = match self.addrs.iter().position(|a| *a == self.target) {
            Some(i) => (i + 1) % self.addrs.len(),
            None => 0,
        };
        self.target = self.addrs[next].clone();
        self.unanswered = 0;
        self.moves += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<VsAddr> {
        ["a", "b", "c"].into_iter().map(VsAddr::new).collect()
    }

    #[test]
    fn q2_follows_redirects_and_moves_on_from_a_silent_node() {
        let mut loc = Locator::new(addrs());
        assert_eq!(loc.target_addr().as_str(), "a");
        loc.redirected(&VsAddr::new("a"), Some(VsAddr::new("c")));
        assert_eq!(loc.target_addr().as_str(), "c");
        // A late redirect from a node that is no longer the target changes nothing.
        loc.redirected(&VsAddr::new("a"), Some(VsAddr::new("b")));
        assert_eq!(loc.target_addr().as_str(), "c");
        for _ in 0..MAX_UNANSWERED {
            loc.sent();
        }
        assert_eq!(loc.target_addr().as_str(), "c");
        loc.sent();
        assert_eq!(loc.target_addr().as_str(), "a", "wraps around the list");
        loc.sent();
        loc.answered(&VsAddr::new("a"));
        for _ in 0..MAX_UNANSWERED {
            loc.sent();
        }
        assert_eq!(
            loc.target_addr().as_str(),
            "a",
            "an answer resets the count"
        );
        loc.redirected(&VsAddr::new("a"), None);
        assert_eq!(loc.target_addr().as_str(), "b");
        // A leader outside the list (added online) is followed, and left for the list's first.
        loc.redirected(&VsAddr::new("b"), Some(VsAddr::new("d")));
        assert_eq!(loc.target_addr().as_str(), "d");
        loc.redirected(&VsAddr::new("d"), None);
        assert_eq!(loc.target_addr().as_str(), "a");
        // A refused connection to the target moves on at once; one to another node does not.
        loc.unreachable(&VsAddr::new("c"));
        assert_eq!(loc.target_addr().as_str(), "a");
        loc.unreachable(&VsAddr::new("a"));
        assert_eq!(loc.target_addr().as_str(), "b");
    }
}
