//! Sets a cfg for each outside program the integration tests run (see
//! `build-support/outside_tools.rs`): tests whose program is missing are reported as ignored.
//! Client libraries that are not programs (Debian's Go sources, PHP and Ruby extensions) are
//! probed by running their interpreter on a one-line check ([`LibraryCheck`]).

#[path = "../../build-support/outside_tools.rs"]
mod outside_tools;

use std::env;
use std::path::Path;
use std::process::Command;

use outside_tools::{OutsideTool, PythonModule, probe, probe_python};

/// A client library some tests use, found when `program args` succeeds (with `env`).
struct LibraryCheck {
    program: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    cfg: &'static str,
    /// The Debian packages that provide it, named in the CI warning.
    packages: &'static str,
    /// Where the packages install it: the probe runs again when this changes.
    installed_in: &'static str,
}

/// Like `outside_tools::probe`: the cfg is set when the check succeeds, or under CI whether it
/// does or not (so a missing library fails its tests there).
fn probe_libraries(checks: &[LibraryCheck]) {
    let under_ci = env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    for check in checks {
        println!("cargo::rustc-check-cfg=cfg({})", check.cfg);
        // Only an existing path: a missing one would make cargo run this script every build.
        if Path::new(check.installed_in).exists() {
            println!("cargo::rerun-if-changed={}", check.installed_in);
        }
        let found = Command::new(check.program)
            .args(check.args)
            .envs(check.env.iter().copied())
            .output()
            .is_ok_and(|output| output.status.success());
        if found {
            println!("cargo::rustc-cfg={}", check.cfg);
        } else if under_ci {
            println!(
                "cargo::warning=CI is set and `{} {}` fails (Debian packages {}): the tests \
                 that need it will run and fail",
                check.program,
                check.args.join(" "),
                check.packages
            );
            println!("cargo::rustc-cfg={}", check.cfg);
        }
    }
}

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
    probe_libraries(&[
        LibraryCheck {
            program: "go",
            args: &["list", "gopkg.in/redis.v5", "github.com/mna/redisc"],
            env: &[("GO111MODULE", "off"), ("GOPATH", "/usr/share/gocode")],
            cfg: "has_go_cluster_clients",
            packages: "golang-go golang-gopkg-redis.v5-dev golang-github-mna-redisc-dev",
            installed_in: "/usr/share/gocode/src",
        },
        LibraryCheck {
            program: "php",
            args: &["-r", "exit(class_exists('RedisCluster') ? 0 : 1);"],
            env: &[],
            cfg: "has_php_redis",
            packages: "php-cli php-redis",
            installed_in: "/etc/php",
        },
        LibraryCheck {
            program: "ruby",
            args: &["-e", "require 'redis'; require 'redis/cluster'"],
            env: &[],
            cfg: "has_ruby_redis_cluster",
            packages: "ruby ruby-redis (redis-rb 4.x)",
            installed_in: "/usr/share/rubygems-integration/all/specifications",
        },
    ]);
}
