//! Probes PATH for the outside programs some integration tests run (Redis tools, a browser,
//! Docker), for the build scripts of the crates that hold those tests.
//!
//! For each program found, the build script sets a cfg (`has_redis_server`, ...) and the test
//! that needs it is declared `#[cfg_attr(not(has_redis_server), ignore = "...")]`: on a
//! machine without the program, `cargo test` reports that test as ignored, with the reason,
//! instead of counting a test that never ran as passed.
//!
//! Under CI (the `CI` variable set to anything but empty, `0` or `false`), every cfg is set
//! whether the program was found or not, so a missing program makes its tests run and fail
//! with the program's name and the Debian package that provides it. CI must never go green
//! on tests it did not run.
//!
//! The probe runs again when PATH or CI changes, or when a directory on PATH changes (a
//! program installed or removed there).

use std::env;
use std::path::{Path, PathBuf};

/// An outside program that some tests run.
pub struct OutsideTool {
    /// The program's file name, as looked up on PATH.
    pub program: &'static str,
    /// The cfg set when the program is on PATH.
    pub cfg: &'static str,
    /// The Debian package that provides it, named in the CI warning.
    pub package: &'static str,
}

/// Emits the cargo instructions for `tools`; see the module documentation.
pub fn probe(tools: &[OutsideTool]) {
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    let directories = path_directories();
    for directory in &directories {
        println!("cargo::rerun-if-changed={}", directory.display());
    }
    let under_ci = env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    for tool in tools {
        println!("cargo::rustc-check-cfg=cfg({})", tool.cfg);
        let found = directories
            .iter()
            .any(|directory| is_executable(&directory.join(tool.program)));
        if found {
            println!("cargo::rustc-cfg={}", tool.cfg);
        } else if under_ci {
            println!(
                "cargo::warning=CI is set and `{}` is not on PATH (Debian package {}): \
                 the tests that need it will run and fail",
                tool.program, tool.package
            );
            println!("cargo::rustc-cfg={}", tool.cfg);
        }
    }
}

/// The absolute directories on PATH that exist. A relative entry is skipped: what it names
/// depends on the directory a test is started from, which the build cannot know.
fn path_directories() -> Vec<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .filter(|directory| directory.is_absolute() && directory.is_dir())
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// A Python module that some tests import (a client library), run with `python3`.
#[allow(dead_code)] // Not every crate's tests import one.
pub struct PythonModule {
    /// The module's import name.
    pub module: &'static str,
    /// The cfg set when `python3 -c "import MODULE"` succeeds.
    pub cfg: &'static str,
    /// The pip package that provides it, named in the CI warning.
    pub package: &'static str,
}

/// Like [`probe`], for Python modules: the cfg is set when `python3` imports the module, or
/// under CI whether it does or not (so a missing module fails its tests there).
#[allow(dead_code)] // Not every crate's tests import one.
pub fn probe_python(modules: &[PythonModule]) {
    let under_ci = env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    for module in modules {
        println!("cargo::rustc-check-cfg=cfg({})", module.cfg);
        let found = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!("import {}", module.module))
            .output()
            .is_ok_and(|output| output.status.success());
        if found {
            println!("cargo::rustc-cfg={}", module.cfg);
        } else if under_ci {
            println!(
                "cargo::warning=CI is set and python3 cannot import `{}` (pip package {}): \
                 the tests that need it will run and fail",
                module.module, module.package
            );
            println!("cargo::rustc-cfg={}", module.cfg);
        }
    }
}
