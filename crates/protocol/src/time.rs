//! Time as an input. The cores never read a clock: every input method takes a `Now`.

/// The current time, as the caller's clocks tell it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now {
    /// Monotonic milliseconds since an arbitrary origin: timers and failure detection.
    pub mono_ms: u64,
    /// Wall-clock Unix milliseconds: only the primary uses it, to decide expiry times (P5).
    pub wall_ms: u64,
}

impl Now {
    /// A time whose wall clock equals its monotonic clock (tests).
    pub fn at_ms(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: ms,
        }
    }
}
