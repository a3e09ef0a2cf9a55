//! The view service (standalone) and a view-service node of a three-node group fed messages
//! the fuzzer's bytes choose (tandem_sim::hostile), Raft messages included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_sim::hostile::ByteSource;

fuzz_target!(|data: &[u8]| {
    tandem_sim::hostile::drive_view_service(&mut ByteSource::new(data), 256);
});
