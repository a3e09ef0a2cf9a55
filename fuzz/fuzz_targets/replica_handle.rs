//! A primary and its backup exchanging real traffic while the fuzzer's bytes drive a hostile
//! peer (tandem_sim::hostile) that injects mutated copies of that traffic and made-up messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_sim::hostile::ByteSource;

fuzz_target!(|data: &[u8]| {
    tandem_sim::hostile::drive_replicas(&mut ByteSource::new(data), 256);
});
