//! Prometheus exposition with arbitrary label values: each sample is exactly one line, and
//! unescaping each label value gives back the original (no value can break out of its quotes
//! or inject a line).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::metrics::Exposition;

fn unescape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Splits `k="v",k="v"` label text at unescaped quotes.
fn label_values(s: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut cur = String::new();
    let mut inside = false;
    let mut escaped = false;
    for c in s.chars() {
        if inside {
            if escaped {
                cur.push(c);
                escaped = false;
            } else if c == '\\' {
                cur.push(c);
                escaped = true;
            } else if c == '"' {
                values.push(std::mem::take(&mut cur));
                inside = false;
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            inside = true;
        }
    }
    values
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\u{1f}').take(6).collect();
    let names = ["a", "b", "c", "d", "e", "f"];
    let labels: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().copied()).collect();
    let mut x = Exposition::default();
    x.sample("m", &labels, 1);
    let out = x.finish();
    assert_eq!(out.matches('\n').count(), 1, "one line per sample");
    assert!(out.ends_with(" 1\n"));
    let inner = out
        .strip_prefix("m{")
        .and_then(|s| s.strip_suffix("} 1\n"))
        .unwrap_or("");
    if labels.is_empty() {
        assert_eq!(out, "m 1\n");
        return;
    }
    let got: Vec<String> = label_values(inner)
        .iter()
        .map(|v| unescape(v).expect("valid escapes"))
        .collect();
    let want: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
});
