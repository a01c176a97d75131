//! The soak's pictures, as inline SVG written here: no scripts, no fonts or images fetched,
//! nothing but elements a browser draws. Each chart carries its numbers as `data-*`
//! attributes, so a test can hold the picture to soak.json.

use super::EndpointReport;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 30.0;

/// The timeline draws at most this many answers (those outside budget first, up to half of
/// them, then an even sample of the rest); `data-answers` and `data-outside` keep the counts.
pub const MAX_POINTS: usize = 2000;

/// Latency bucket upper bounds in ms (the last bucket is open).
const BUCKETS: &[u32] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 60_000,
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `<svg>` start: `title` for assistive technology and tooltips, `caption` drawn on top.
fn open(kind: &str, r: &EndpointReport, title: &str, caption: &str, extra: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" data-chart="{kind}" data-endpoint="{}"{extra}><title>{}</title><text x="{LEFT}" y="14" font-size="12" font-family="sans-serif">{}</text>"#,
        r.endpoint.label(),
        esc(title),
        esc(caption)
    )
}

fn bucket_label(ix: usize) -> String {
    let ms = |v: u32| {
        if v >= 1000 {
            format!("{}s", v / 1000)
        } else {
            format!("{v}")
        }
    };
    match BUCKETS.get(ix) {
        Some(v) => format!("≤{}", ms(*v)),
        None => format!(">{}", ms(BUCKETS[BUCKETS.len() - 1])),
    }
}

/// The latency distribution: answers per latency bucket, the budget's bucket marked.
pub fn histogram(r: &EndpointReport, sorted_latencies: &[u32]) -> String {
    let mut counts = vec![0u64; BUCKETS.len() + 1];
    for &ms in sorted_latencies {
        let ix = BUCKETS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS.len());
        counts[ix] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / counts.len() as f64;
    let budget_ix = BUCKETS
        .iter()
        .position(|b| r.budget_ms <= u64::from(*b))
        .unwrap_or(BUCKETS.len());
    let title = format!(
        "{} endpoint: latency of {} answers (p50 {}, p95 {}, p99 {})",
        r.endpoint.label(),
        sorted_latencies.len(),
        ms_or_dash(r.p50_ms),
        ms_or_dash(r.p95_ms),
        ms_or_dash(r.p99_ms)
    );
    let mut s = open(
        "histogram",
        r,
        &title,
        &title,
        &format!(
            r#" data-answers="{}" data-p50="{}" data-p95="{}" data-p99="{}""#,
            sorted_latencies.len(),
            opt(r.p50_ms),
            opt(r.p95_ms),
            opt(r.p99_ms)
        ),
    );
    for (ix, &count) in counts.iter().enumerate() {
        let h = plot_h * count as f64 / max;
        let x = LEFT + ix as f64 * bar_w;
        let over = ix > budget_ix;
        s.push_str(&format!(
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" data-bucket="{}" data-count="{count}"><title>{}: {count}</title></rect>"##,
            TOP + plot_h - h,
            bar_w - 2.0,
            if over { "#c0392b" } else { "#2e86c1" },
            esc(&bucket_label(ix)),
            esc(&bucket_label(ix)),
        ));
        if ix % 2 == 0 {
            s.push_str(&format!(
                r#"<text x="{:.1}" y="{:.1}" font-size="9" font-family="sans-serif">{}</text>"#,
                x,
                HEIGHT - 16.0,
                esc(&bucket_label(ix))
            ));
        }
    }
    let bx = LEFT + (budget_ix as f64 + 1.0) * bar_w;
    s.push_str(&format!(
        r##"<line x1="{bx:.1}" y1="{TOP}" x2="{bx:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10" font-family="sans-serif">budget {} ms</text>"##,
        TOP + plot_h,
        (bx + 3.0).min(WIDTH - 80.0),
        TOP + 10.0,
        r.budget_ms
    ));
    s.push_str(&format!(
        r#"<text x="4" y="{:.1}" font-size="9" font-family="sans-serif">{}</text><text x="{LEFT}" y="{:.1}" font-size="9" font-family="sans-serif">ms</text></svg>"#,
        TOP + 8.0,
        max as u64,
        HEIGHT - 4.0
    ));
    s
}

/// The timeline: every answer (up to [`MAX_POINTS`]) at its time and latency on a log scale,
/// outside budget in red, with the budget line.
pub fn timeline(r: &EndpointReport, points: &[(u32, u32, bool)]) -> String {
    let shown: Vec<&(u32, u32, bool)> = if points.len() <= MAX_POINTS {
        points.iter().collect()
    } else {
        let bad: Vec<_> = points
            .iter()
            .filter(|p| !p.2)
            .take(MAX_POINTS / 2)
            .collect();
        let room = MAX_POINTS - bad.len();
        let step = points.len() as f64 / room as f64;
        let mut sample: Vec<_> = (0..room)
            .map(|i| &points[((i as f64 * step) as usize).min(points.len() - 1)])
            .filter(|p| p.2)
            .collect();
        sample.extend(bad);
        sample
    };
    let t_max = points.iter().map(|p| p.0).max().unwrap_or(0).max(1) as f64;
    let ms_max = points
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(0)
        .max(r.budget_ms.min(u64::from(u32::MAX)) as u32)
        .max(10) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |ms: f64| TOP + plot_h - plot_h * (ms + 1.0).log10() / (ms_max + 1.0).log10();
    let outside = points.iter().filter(|p| !p.2).count();
    let title = format!(
        "{} endpoint: {} answers over {:.1} s, {} outside budget",
        r.endpoint.label(),
        points.len(),
        t_max / 1000.0,
        outside
    );
    let mut s = open(
        "timeline",
        r,
        &title,
        &title,
        &format!(
            r#" data-answers="{}" data-outside="{outside}" data-shown="{}" data-budget-ms="{}""#,
            points.len(),
            shown.len(),
            r.budget_ms
        ),
    );
    s.push_str(&format!(
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>"##
    ));
    for p in &shown {
        s.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{}"/>"##,
            LEFT + plot_w * f64::from(p.0) / t_max,
            y(f64::from(p.1)),
            if p.2 { "#2e86c1" } else { "#c0392b" }
        ));
    }
    let by = y(r.budget_ms as f64);
    s.push_str(&format!(
        r##"<line x1="{LEFT}" y1="{by:.1}" x2="{:.1}" y2="{by:.1}" stroke="#c0392b" stroke-dasharray="5 3" data-budget-line="{}"/><text x="{:.1}" y="{:.1}" font-size="10" font-family="sans-serif">budget {} ms</text>"##,
        WIDTH - RIGHT,
        r.budget_ms,
        WIDTH - RIGHT - 90.0,
        by - 3.0,
        r.budget_ms
    ));
    for ms in [1.0, 10.0, 100.0, 1000.0, 10_000.0, 60_000.0] {
        if ms <= ms_max {
            s.push_str(&format!(
                r#"<text x="4" y="{:.1}" font-size="9" font-family="sans-serif">{} ms</text>"#,
                y(ms) + 3.0,
                ms as u64
            ));
        }
    }
    s.push_str(&format!(
        r#"<text x="{LEFT}" y="{:.1}" font-size="9" font-family="sans-serif">0 s</text><text x="{:.1}" y="{:.1}" font-size="9" font-family="sans-serif">{:.1} s</text></svg>"#,
        HEIGHT - 12.0,
        WIDTH - RIGHT - 30.0,
        HEIGHT - 12.0,
        t_max / 1000.0
    ));
    s
}

/// The availability bar: the fraction within budget, its 95 % interval as a whisker, and
/// MedMij's figure as a line.
pub fn availability(r: &EndpointReport) -> String {
    let low_edge = (r.interval[0].min(r.target) - 0.01).clamp(0.0, 0.99);
    let low_edge = (low_edge * 100.0).floor() / 100.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |f: f64| LEFT + plot_w * ((f - low_edge) / (1.0 - low_edge)).clamp(0.0, 1.0);
    let title = format!(
        "{} endpoint: {} within {} ms, 95 % interval {}–{}, figure {}: {}",
        r.endpoint.label(),
        super::percent(r.fraction),
        r.budget_ms,
        super::percent(r.interval[0]),
        super::percent(r.interval[1]),
        super::percent(r.target),
        r.decision.label()
    );
    let colour = match r.decision {
        super::Decision::Meets => "#27ae60",
        super::Decision::Misses => "#c0392b",
        super::Decision::Undecided => "#f39c12",
    };
    let mut s = open(
        "availability",
        r,
        &title,
        &format!(
            "{} endpoint: answers within {} ms, against MedMij's figure",
            r.endpoint.label(),
            r.budget_ms
        ),
        &format!(
            r#" data-fraction="{:.6}" data-low="{:.6}" data-high="{:.6}" data-target="{:.6}" data-decision="{}""#,
            r.fraction,
            r.interval[0],
            r.interval[1],
            r.target,
            r.decision.label()
        ),
    );
    let bar_y = TOP + 30.0;
    s.push_str(&format!(
        r##"<rect x="{LEFT}" y="{bar_y}" width="{:.1}" height="36" fill="#eee"/><rect x="{LEFT}" y="{bar_y}" width="{:.1}" height="36" fill="{colour}"/>"##,
        plot_w,
        x(r.fraction) - LEFT
    ));
    let (wl, wh) = (x(r.interval[0]), x(r.interval[1]));
    let wy = bar_y + 18.0;
    s.push_str(&format!(
        r##"<line x1="{wl:.1}" y1="{wy}" x2="{wh:.1}" y2="{wy}" stroke="#000" stroke-width="2"/><line x1="{wl:.1}" y1="{:.1}" x2="{wl:.1}" y2="{:.1}" stroke="#000" stroke-width="2"/><line x1="{wh:.1}" y1="{:.1}" x2="{wh:.1}" y2="{:.1}" stroke="#000" stroke-width="2"/>"##,
        wy - 8.0,
        wy + 8.0,
        wy - 8.0,
        wy + 8.0
    ));
    let tx = x(r.target);
    s.push_str(&format!(
        r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10" font-family="sans-serif">MedMij {}</text>"##,
        bar_y - 10.0,
        bar_y + 46.0,
        (tx - 60.0).max(LEFT),
        bar_y - 13.0,
        super::percent(r.target)
    ));
    s.push_str(&format!(
        r#"<text x="{LEFT}" y="{:.1}" font-size="9" font-family="sans-serif">{:.0} %</text><text x="{:.1}" y="{:.1}" font-size="9" font-family="sans-serif">100 %</text><text x="{LEFT}" y="{:.1}" font-size="11" font-family="sans-serif">{} within budget [{}–{}]: {}</text></svg>"#,
        bar_y + 52.0,
        low_edge * 100.0,
        WIDTH - RIGHT - 30.0,
        bar_y + 52.0,
        HEIGHT - 8.0,
        super::percent(r.fraction),
        super::percent(r.interval[0]),
        super::percent(r.interval[1]),
        r.decision.label()
    ));
    s
}

fn ms_or_dash(v: Option<u32>) -> String {
    v.map_or("–".into(), |v| format!("{v} ms"))
}

fn opt(v: Option<u32>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}
