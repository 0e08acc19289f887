#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(init: targets::dockertar_init(), |data: &[u8]| {
    targets::dockertar(data)
});
