//! `adaptFilters` parser: never panics; an error points inside the input; a parsed expression
//! prints to canonical text that parses back to the same tree, and printing is a fixed point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::filters::{MAX_FILTER_LEN, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(e) => {
            let printed = e.to_string();
            let again = parse(&printed);
            // Canonical text may exceed the length cap only if the input was near it.
            if printed.len() <= MAX_FILTER_LEN {
                let again = again.expect("canonical text must parse");
                assert_eq!(again, e);
                assert_eq!(again.to_string(), printed);
            }
        }
        Err(err) => assert!(err.at <= text.len().max(MAX_FILTER_LEN)),
    }
});
