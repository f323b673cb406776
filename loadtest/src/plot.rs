//! `--plot FILE.svg`: the run over time, drawn by hand as SVG polylines (no plotting crate):
//! delivered msgs/s, p99 latency per class, and server RSS, one line per pass.

use std::fmt::Write as _;

use crate::report::Report;

const W: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

type Line = (String, Vec<(f64, f64)>);

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn panel(out: &mut String, top: f64, title: &str, unit: &str, lines: &[Line]) {
    let plot_w = W - LEFT - RIGHT;
    let x_max = nice_max(
        lines
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
            .fold(0.0, f64::max),
    );
    let y_max = nice_max(
        lines
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| top + PANEL_H - v / y_max * PANEL_H;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        top - 10.0,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
    );
    for i in 0..=4 {
        let fy = f64::from(i) / 4.0;
        let vy = y_max * fy;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}" stroke="#eee"/><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(vy) + 4.0,
            format_num(vy),
            y0 = y(vy),
        );
        let vx = x_max * fy;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            x(vx),
            top + PANEL_H + 16.0,
            format_num(vx)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">seconds</text><text x="14" y="{}" font-size="11" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        top + PANEL_H + 32.0,
        top + PANEL_H / 2.0,
        top + PANEL_H / 2.0,
        escape(unit)
    );
    for (i, (label, pts)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let ly = top + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            LEFT + plot_w + 10.0,
            LEFT + plot_w + 30.0,
            LEFT + plot_w + 36.0,
            ly + 4.0,
            escape(label)
        );
    }
}

fn format_num(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The SVG document for a report.
pub fn svg(report: &Report) -> String {
    let mut msgs: Vec<Line> = Vec::new();
    let mut p99: Vec<Line> = Vec::new();
    let mut rss: Vec<Line> = Vec::new();
    for pass in &report.passes {
        msgs.push((
            pass.target.clone(),
            pass.series
                .iter()
                .map(|p| (p.t_secs, p.msgs_per_sec))
                .collect(),
        ));
        let mut classes: Vec<&String> = pass.series.iter().flat_map(|p| p.p99_ms.keys()).collect();
        classes.sort();
        classes.dedup();
        for class in classes {
            p99.push((
                format!("{} {class}", pass.target),
                pass.series
                    .iter()
                    .filter_map(|p| p.p99_ms.get(class).map(|v| (p.t_secs, *v)))
                    .collect(),
            ));
        }
        rss.push((
            pass.target.clone(),
            pass.series
                .iter()
                .filter_map(|p| p.rss_kib.map(|r| (p.t_secs, r as f64 / 1024.0)))
                .collect(),
        ));
    }
    let height = TOP + 3.0 * (PANEL_H + GAP) + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="13">gavel-loadtest {} ({}) — {}</text>"#,
        escape(&report.scenario),
        escape(&report.run_id),
        escape(&report.note)
    );
    panel(&mut out, TOP + 20.0, "delivered msgs/s", "msgs/s", &msgs);
    panel(
        &mut out,
        TOP + 20.0 + PANEL_H + GAP,
        "p99 latency (per second)",
        "ms",
        &p99,
    );
    panel(
        &mut out,
        TOP + 20.0 + 2.0 * (PANEL_H + GAP),
        "server RSS",
        "MiB",
        &rss,
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PassReport, Point};

    #[test]
    fn a_report_draws_as_svg() {
        let mut pass = PassReport {
            target: "gavel".into(),
            ..PassReport::default()
        };
        for t in 0..5 {
            let mut p = Point {
                t_secs: f64::from(t),
                msgs_per_sec: 100.0 * f64::from(t),
                rss_kib: Some(2048),
                ..Point::default()
            };
            p.p99_ms.insert("feed".into(), 1.5);
            pass.series.push(p);
        }
        let report = Report {
            scenario: "market".into(),
            passes: vec![pass],
            ..Report::default()
        };
        let svg = svg(&report);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(nice_max(730.0), 1000.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
