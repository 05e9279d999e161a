//! `plot`: refresh and bearer at 1, 2, 4, …, 64 workers, written as hand-made SVG charts of
//! throughput against concurrency (with p99 latency on a second axis and the in-process ceiling
//! as a dashed line).

use std::fmt::Write as _;

use crate::scenarios::{self, Scenario};
use crate::server::Backend;
use crate::{thousands, Opts};

const LEVELS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

struct Point {
    workers: usize,
    rate: f64,
    p99: f64,
    ceiling: f64,
}

pub async fn run(opts: &Opts, backend: Backend) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    for scenario in [Scenario::Refresh, Scenario::Bearer] {
        let mut points = Vec::new();
        println!(
            "\n| {} ({}) workers | req/s | p50 ms | p99 ms | in-process ceiling | ratio |\n|---|---|---|---|---|---|",
            scenario.name(),
            backend.name()
        );
        for workers in LEVELS {
            eprintln!("{} c={workers} …", scenario.name());
            let row = scenarios::run(opts, scenario, backend, workers).await?;
            println!(
                "| {workers} | {} | {:.2} | {:.2} | {}/s | {:.2} |",
                thousands(row.stats.rate()),
                row.stats.pct_ms(0.5),
                row.stats.pct_ms(0.99),
                thousands(row.ceiling_value),
                row.ratio
            );
            points.push(Point {
                workers,
                rate: row.stats.rate(),
                p99: row.stats.pct_ms(0.99),
                ceiling: row.ceiling_value,
            });
        }
        let path = format!("{}/{}.svg", opts.out, scenario.name());
        std::fs::write(&path, svg(scenario, backend, &points))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn nice_ceil(v: f64) -> f64 {
    let v = v.max(1.0);
    let mag = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= step * mag {
            return step * mag;
        }
    }
    10.0 * mag
}

fn svg(scenario: Scenario, backend: Backend, points: &[Point]) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (80.0, 80.0, 50.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let ceiling = points.iter().map(|p| p.ceiling).fold(0.0, f64::max);
    let ymax = nice_ceil(points.iter().map(|p| p.rate).fold(ceiling, f64::max) * 1.05);
    let lmax = nice_ceil(points.iter().map(|p| p.p99).fold(1.0, f64::max) * 1.1);
    let x = |workers: usize| {
        left + pw * (workers as f64).log2() / (LEVELS[LEVELS.len() - 1] as f64).log2()
    };
    let y = |rate: f64| top + ph * (1.0 - rate / ymax);
    let yl = |ms: f64| top + ph * (1.0 - ms / lmax);
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="20" text-anchor="middle" font-size="15">tokend {}: throughput and p99 against concurrency ({})</text><text x="{}" y="38" text-anchor="middle" font-size="11" fill="#555">2 cores shared with the load generator, {date}</text>"##,
        w / 2.0,
        scenario.name(),
        backend.name(),
        w / 2.0
    );
    // Grid and left axis (requests per second).
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 8.0,
            yy + 4.0,
            thousands(v)
        );
        let l = lmax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#c0392b">{l:.1}</text>"##,
            left + pw + 8.0,
            yl(l) + 4.0
        );
    }
    for workers in LEVELS {
        let xx = x(workers);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{workers}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrent workers (each one request at a time, keep-alive)</text>"##,
        left + pw / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle" fill="#1f5fa8">requests per second</text>"##,
        top + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle" fill="#c0392b">p99 latency, ms</text>"##,
        w - 22.0,
        top + ph / 2.0
    );
    // The in-process ceiling.
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#555">in-process ceiling, 2 cores: {}/s</text>"##,
        y(ceiling),
        left + pw,
        y(ceiling),
        left + 6.0,
        y(ceiling) - 6.0,
        thousands(ceiling)
    );
    let line = |f: &dyn Fn(&Point) -> (f64, f64)| {
        points
            .iter()
            .map(|p| {
                let (a, b) = f(p);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f5fa8" stroke-width="2.5" points="{}"/>"##,
        line(&|p| (x(p.workers), y(p.rate)))
    );
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="3 3" points="{}"/>"##,
        line(&|p| (x(p.workers), yl(p.p99)))
    );
    for p in points {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#1f5fa8"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#1f5fa8">{}</text><circle cx="{:.1}" cy="{:.1}" r="3" fill="#c0392b"/>"##,
            x(p.workers),
            y(p.rate),
            x(p.workers),
            y(p.rate) - 9.0,
            thousands(p.rate),
            x(p.workers),
            yl(p.p99)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#1f5fa8">● requests/s</text><text x="{:.1}" y="{:.1}" fill="#c0392b">● p99 ms (right axis)</text>"##,
        left + pw - 250.0,
        top + ph - 12.0,
        left + pw - 140.0,
        top + ph - 12.0
    );
    s.push_str("</svg>\n");
    s
}
