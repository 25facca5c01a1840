//! Configuration parser: never panics; an accepted configuration serialises to TOML that
//! parses back to an equal configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::from_toml(text) {
        let again = Config::from_toml(&cfg.to_toml()).expect("own output must parse");
        assert_eq!(again, cfg);
    }
});
