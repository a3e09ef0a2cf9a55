//! Sets a cfg for each outside program the integration tests run (see
//! `build-support/outside_tools.rs`): tests whose program is missing are reported as ignored.

#[path = "../../build-support/outside_tools.rs"]
mod outside_tools;

use outside_tools::{OutsideTool, PythonModule, probe, probe_python};

fn main() {
    probe(&[
        OutsideTool {
            program: "redis-cli",
            cfg: "has_redis_cli",
            package: "redis-tools",
        },
        OutsideTool {
            program: "redis-server",
            cfg: "has_redis_server",
            package: "redis-server",
        },
        OutsideTool {
            program: "redis-benchmark",
            cfg: "has_redis_benchmark",
            package: "redis-tools",
        },
        OutsideTool {
            program: "chromium",
            cfg: "has_chromium",
            package: "chromium",
        },
        OutsideTool {
            program: "chromedriver",
            cfg: "has_chromedriver",
            package: "chromium-driver",
        },
        OutsideTool {
            program: "docker",
            cfg: "has_docker",
            package: "docker.io",
        },
        OutsideTool {
            program: "docker-compose",
            cfg: "has_docker_compose",
            package: "docker-compose",
        },
    ]);
    probe_python(&[PythonModule {
        module: "redis",
        cfg: "has_redis_py",
        package: "redis",
    }]);
}
