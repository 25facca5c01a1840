//! The committed seed corpus of the `table_file` fuzz target (`fuzz/corpus/table_file/`):
//! patch lists `[offset u16 LE][len u8][bytes]` over the target's small table. Rewrite with
//! `SLUICE_WRITE_CORPUS=1 cargo test -p sluice-table --test fuzz_seeds`; otherwise the test
//! checks the committed files are current.

use std::path::PathBuf;

fn patch(off: u16, bytes: &[u8]) -> Vec<u8> {
    let mut v = off.to_le_bytes().to_vec();
    v.push(bytes.len() as u8);
    v.extend_from_slice(bytes);
    v
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // With the target's capacities the header is 4096 bytes, apps take 2 x 2048 bytes and
    // the keys region starts at 8192 (slot words: seq, meta, tag, aux, payload).
    vec![
        ("untouched", Vec::new()),
        ("bad-magic", patch(0, b"XLUICETB")),
        ("abi-2", patch(8, &[2, 0, 0, 0])),
        ("event-head-huge", patch(272, &[0xff; 8])),
        (
            "region-capacity",
            patch(24 + 8 + 4, &[0xff, 0xff, 0xff, 0x0f]),
        ),
        ("key-slot-odd-seq", patch(8192, &[1])),
        (
            "key-slot-long-len",
            patch(8192 + 8 + 4, &[0xff, 0xff, 0xff, 0x7f]),
        ),
        (
            "key-slot-garbage",
            [
                patch(8192 + 32, &[0x93, 0xc0, 0xc0, 0xc0]),
                patch(8192 + 8, &[1]),
            ]
            .concat(),
        ),
    ]
}

#[test]
fn table_file_seed_corpus_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/table_file");
    let write = std::env::var_os("SLUICE_WRITE_CORPUS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with SLUICE_WRITE_CORPUS=1)", path.display())
            });
            assert_eq!(committed, bytes, "{name} is stale");
        }
    }
}
