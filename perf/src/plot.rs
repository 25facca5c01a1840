//! Plots of a run: server CPU and latency against live streams.
//!
//! Written as SVG by hand (a few dozen lines, no font or image dependencies) and converted to
//! PNG with ImageMagick's `convert` or `rsvg-convert` when one is installed; the SVG stays
//! next to the PNG either way.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use crate::load::RunResult;

/// One line of a chart.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Stroke colour (CSS).
    pub color: &'a str,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// An SVG line chart (points drawn as markers joined in x order).
pub fn svg_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 400.0, 70.0, 20.0, 40.0, 50.0);
    let all = series.iter().flat_map(|s| s.points.iter());
    let xmax = all.clone().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
    let ymax = all.map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.1;
    let sx = |x: f64| ml + x / xmax * (w - ml - mr);
    let sy = |y: f64| h - mb - y / ymax * (h - mt - mb);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>"#,
        w / 2.0
    );
    let _ = write!(
        s,
        r#"<line x1="{ml}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{ml}" y1="{mt}" x2="{ml}" y2="{}" stroke="black"/>"#,
        h - mb,
        w - mr,
        h - mb,
        h - mb
    );
    for k in 0..=4 {
        let (xv, yv) = (xmax * k as f64 / 4.0, ymax * k as f64 / 4.0);
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{xv:.0}</text><text x="{}" y="{:.1}" text-anchor="end">{yv:.2}</text><line x1="{ml}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/>"##,
            sx(xv),
            h - mb + 16.0,
            ml - 6.0,
            sy(yv) + 4.0,
            sy(yv),
            w - mr,
            sy(yv)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text><text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{y_label}</text>"#,
        (ml + w - mr) / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for (i, se) in series.iter().enumerate() {
        let mut pts = se.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            se.color,
            path.join(" ")
        );
        for p in &pts {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                sx(p.0),
                sy(p.1),
                se.color
            );
        }
        let ly = mt + 14.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            ml + 10.0,
            ly,
            se.color,
            ml + 24.0,
            ly + 9.0,
            se.name
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `svg` to `path` (ending in `.svg`) and a PNG beside it if a converter exists.
/// Returns whether the PNG was written.
pub fn write_svg_and_png(svg: &str, path: &Path) -> std::io::Result<bool> {
    std::fs::write(path, svg)?;
    let png = path.with_extension("png");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    Ok(
        ok(Command::new("rsvg-convert").arg("-o").arg(&png).arg(path))
            || ok(Command::new("convert").arg(path).arg(&png)),
    )
}

/// The run's plots, next to `json`: `<stem>-cpu.svg/png` and `<stem>-latency.svg/png`.
pub fn write_run_plots(r: &RunResult, json: &Path) -> std::io::Result<()> {
    let stem = json.with_extension("");
    let streams = |s: &crate::load::SamplePoint| s.publishers_live as f64;
    let cpu = [
        Series {
            name: "server",
            color: "#1f77b4",
            points: r
                .samples
                .iter()
                .map(|s| (streams(s), s.gw_cpu_pct))
                .collect(),
        },
        Series {
            name: "load tool",
            color: "#ff7f0e",
            points: r
                .samples
                .iter()
                .map(|s| (streams(s), s.self_cpu_pct))
                .collect(),
        },
    ];
    let svg = svg_chart(
        &format!("CPU {}", r.args.label),
        "live streams",
        "% of one core",
        &cpu,
    );
    write_svg_and_png(
        &svg,
        &stem.with_file_name(format!("{}-cpu.svg", file_stem(&stem))),
    )?;
    let lat = [
        Series {
            name: "p50",
            color: "#2ca02c",
            points: r
                .samples
                .iter()
                .filter(|s| s.lat_p50_ms > 0.0)
                .map(|s| (streams(s), s.lat_p50_ms))
                .collect(),
        },
        Series {
            name: "p99",
            color: "#d62728",
            points: r
                .samples
                .iter()
                .filter(|s| s.lat_p99_ms > 0.0)
                .map(|s| (streams(s), s.lat_p99_ms))
                .collect(),
        },
    ];
    let svg = svg_chart(
        &format!("Latency {}", r.args.label),
        "live streams",
        "ms",
        &lat,
    );
    write_svg_and_png(
        &svg,
        &stem.with_file_name(format!("{}-latency.svg", file_stem(&stem))),
    )?;
    Ok(())
}

fn file_stem(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_contains_series_and_scales() {
        let svg = svg_chart(
            "t",
            "x",
            "y",
            &[Series {
                name: "a",
                color: "red",
                points: vec![(0.0, 0.0), (10.0, 5.0)],
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">10<"), "x axis reaches the largest x");
        // Empty input still yields a valid document.
        assert!(svg_chart("e", "x", "y", &[]).ends_with("</svg>\n"));
    }
}
