//! Turning a panic inside one seed's run into a report of that seed.
//!
//! A core's assertion or a harness bug panics; in a sweep that must fail one seed, named with
//! its replay command, not the whole sweep. [`catch_panic`] runs a closure under
//! `catch_unwind` and returns the panic's message and location.
//!
//! The location is only known to the panic hook, so a hook is installed once per process: on a
//! thread inside `catch_panic` it records the location (and prints the standard message only if
//! asked to); on any other thread it hands over to the hook that was there before, so panics
//! outside a catch look exactly as they did. One hook for the whole process, rather than one set
//! and restored per seed, because sweeps run seeds on several threads at once and the hook is
//! process-wide.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// What a caught panic prints by itself, besides the report that carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanicPrint {
    /// Nothing: the report names the panic and its location (sweeps, where many seeds share one
    /// terminal).
    #[default]
    Silent,
    /// The standard panic message on stderr, with a backtrace when `RUST_BACKTRACE` asks for
    /// one (replaying one seed, where the backtrace is what one wants).
    Standard,
}

/// A panic caught by [`catch_panic`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaughtPanic {
    /// `FILE:LINE` of the panic, when the hook saw it (another hook installed later by someone
    /// else would hide it).
    pub location: Option<String>,
    /// The panic message.
    pub message: String,
}

impl fmt::Display for CaughtPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "panicked at {location}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

/// The state of a `catch_panic` running on this thread.
struct Catching {
    print: PanicPrint,
    location: Option<String>,
}

thread_local! {
    static CATCHING: RefCell<Option<Catching>> = const { RefCell::new(None) };
}

static INSTALL_HOOK: Once = Once::new();

fn install_hook() {
    INSTALL_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let print = CATCHING.with_borrow_mut(|catching| {
                catching.as_mut().map(|catching| {
                    catching.location = info
                        .location()
                        .map(|location| format!("{}:{}", location.file(), location.line()));
                    catching.print
                })
            });
            if print != Some(PanicPrint::Silent) {
                previous(info);
            }
        }));
    });
}

/// Runs `run`; a panic inside it is returned as a [`CaughtPanic`] instead of unwinding further.
///
/// `run` may leave what it borrowed half-updated when it panics (it is treated as unwind safe):
/// callers read such state only to report on it.
pub fn catch_panic<T>(print: PanicPrint, run: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    install_hook();
    let outer = CATCHING.replace(Some(Catching {
        print,
        location: None,
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(run));
    // Restoring the outer state lets catches nest: a panic caught inside belongs to the inner one.
    let inner = CATCHING.replace(outer);
    result.map_err(|payload| CaughtPanic {
        location: inner.and_then(|catching| catching.location),
        message: payload_message(payload.as_ref()),
    })
}

/// `panic!("literal")` carries a `&str`, a formatted `panic!` a `String`; `panic_any` anything.
fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic payload that is not a string".to_string()
    }
}
