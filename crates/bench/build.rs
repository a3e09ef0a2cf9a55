//! Sets a cfg for each outside program the integration tests run (see
//! `build-support/outside_tools.rs`): tests whose program is missing are reported as ignored.

#[path = "../../build-support/outside_tools.rs"]
mod outside_tools;

use outside_tools::{OutsideTool, probe};

fn main() {
    probe(&[OutsideTool {
        program: "redis-server",
        cfg: "has_redis_server",
        package: "redis-server",
    }]);
}
