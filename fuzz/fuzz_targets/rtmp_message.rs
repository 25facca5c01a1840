//! RTMP message bodies (protocol control, user control, AMF0 commands): parsing never
//! panics and parse -> emit -> parse is stable.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::rtmp::message::{Command, ProtocolControl, UserControl};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            let type_id = sel / 3 % 8;
            if let Some(Ok(pc)) = ProtocolControl::parse(type_id, body) {
                let (t, b) = pc.emit();
                assert_eq!(t, type_id);
                assert_eq!(ProtocolControl::parse(t, &b), Some(Ok(pc)));
            }
        }
        1 => {
            if let Ok(uc) = UserControl::parse(&Bytes::copy_from_slice(body)) {
                assert_eq!(UserControl::parse(&uc.emit()), Ok(uc));
            }
        }
        _ => {
            if let Ok(cmd) = Command::parse(body, sel & 4 != 0) {
                let first = cmd.emit();
                let again = Command::parse(&first, false).expect("our own encoding parses");
                assert_eq!(again.emit(), first);
            }
        }
    }
});
