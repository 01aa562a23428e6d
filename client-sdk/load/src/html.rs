//! `--html FILE`: the report as one self-contained page, with every chart drawn by this
//! module as inline SVG. No script, no stylesheet or font from elsewhere, no image: the
//! file opens the same from a laptop, an air-gapped host or a CI artifact, and fetches
//! nothing (the page has no `src` or `href` attribute at all).
//!
//! The page shows, for each run (or each `--find-max` search), encrypted beside plaintext:
//! latency percentiles over time, throughput and errors over time, the gateway's CPU and
//! memory over time when `--server-pid` was given; then the latency distributions overlaid
//! on HdrHistogram's percentile axis, the search's steps against the SLO, and the run's
//! configuration. Every piece of text that comes from outside (model names, URLs, error
//! messages) is escaped.

use std::fmt::Write as _;

use crate::find_max::Search;
use crate::report::{DistributionPoint, Report, RunResult, human_us};
use crate::timeseries::Second;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
/// The percentile axis ends at 99.9999 % (six nines: x = 6); the maximum is drawn there.
const NINES: f64 = 6.0;

/// Line colours, one per series (colour-blind safe, from the Okabe–Ito palette).
const COLOURS: [&str; 6] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line (or set of dots) on a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    dots: bool,
}

impl Series {
    fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, dots: false }
    }
}

/// How the x axis is scaled and labelled.
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    /// Seconds.
    Linear,
    /// HdrHistogram's percentile axis: x = log10(1 / (1 - q)).
    Percentile,
}

/// A round tick step for a range of `span`.
fn tick_step(span: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let ratio = raw / magnitude;
    magnitude
        * if ratio <= 1.0 {
            1.0
        } else if ratio <= 2.0 {
            2.0
        } else if ratio <= 5.0 {
            5.0
        } else {
            10.0
        }
}

fn number(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 1.0 && v.fract() == 0.0) {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_owned()
    }
}

/// An SVG chart; `hline` is a labelled horizontal line (an SLO bound).
fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series], x_axis: XAxis, hline: Option<f64>) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<figure><svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img"><title>{}</title><rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##,
        escape(title)
    );
    let _ = write!(svg, r##"<text x="{LEFT}" y="18" class="title">{}</text>"##, escape(title));
    if all().next().is_none() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" class="empty">no data</text></svg></figure>"##,
            WIDTH / 2.0 - 30.0,
            HEIGHT / 2.0
        );
        return svg;
    }
    let (x_max, x_min) = match x_axis {
        XAxis::Percentile => (NINES, 0.0),
        XAxis::Linear => {
            let max = all().map(|(x, _)| *x).fold(f64::MIN, f64::max);
            let min = all().map(|(x, _)| *x).fold(f64::MAX, f64::min).min(0.0);
            (if max > min { max } else { min + 1.0 }, min)
        }
    };
    let y_data = all().map(|(_, y)| *y).fold(0.0, f64::max).max(hline.unwrap_or(0.0));
    let y_step = tick_step(y_data);
    let y_max = if y_data > 0.0 { (y_data / y_step).ceil() * y_step } else { 1.0 };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
    let py = |y: f64| TOP + plot_h - y.clamp(0.0, y_max) / y_max * plot_h;

    // Grid and ticks.
    let mut y = 0.0;
    while y <= y_max + y_step / 2.0 {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            number(y),
            py = py(y)
        );
        y += y_step;
    }
    let x_ticks: Vec<(f64, String)> = match x_axis {
        XAxis::Percentile => (0..=6)
            .map(|k| {
                let label = match k {
                    0 => "0%".to_owned(),
                    1 => "90%".to_owned(),
                    k => format!("99.{}%", "9".repeat(k - 2)).replace("99.%", "99%"),
                };
                (k as f64, label)
            })
            .collect(),
        XAxis::Linear => {
            let step = tick_step(x_max - x_min);
            let mut ticks = Vec::new();
            let mut x = (x_min / step).ceil() * step;
            while x <= x_max + step / 1e6 {
                ticks.push((x, number(x)));
                x += step;
            }
            ticks
        }
    };
    for (x, label) in x_ticks {
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#f0f0f0"/><text x="{px:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 14.0,
            escape(&label),
            px = px(x)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888888"/><text x="{}" y="{}" class="label" text-anchor="middle">{}</text><text x="14" y="{}" class="label" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    if let Some(bound) = hline {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#b00020" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" class="tick" text-anchor="end" fill="#b00020">SLO</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT - 4.0,
            py(bound) - 4.0,
            y = py(bound)
        );
    }
    // Data and legend.
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        if s.dots {
            for point in &points {
                let (cx, cy) = point.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(svg, r##"<circle cx="{cx}" cy="{cy}" r="4" fill="{colour}"/>"##);
            }
        } else if !points.is_empty() {
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.8"/>"##,
                points.join(" ")
            );
        }
        let lx = LEFT + 8.0 + (i as f64) * 120.0;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" class="legend">{}</text>"##,
            TOP + 6.0,
            lx + 14.0,
            TOP + 15.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// What one column of the page shows: a run, or a whole find-max search.
struct Panel<'a> {
    title: String,
    seconds: &'a [Second],
    distribution: &'a [DistributionPoint],
}

fn latency_chart(panel: &Panel<'_>, slo_ms: Option<f64>) -> String {
    let at = |f: fn(&Second) -> Option<f64>| -> Vec<(f64, f64)> {
        panel.seconds.iter().filter_map(|s| f(s).map(|us| (s.t_s as f64, us / 1e3))).collect()
    };
    let series = [
        Series::line("p50", at(|s| s.p50_us)),
        Series::line("p90", at(|s| s.p90_us)),
        Series::line("p99", at(|s| s.p99_us)),
        Series::line("max", at(|s| s.max_us)),
    ];
    chart(&format!("{}: latency over time", panel.title), "seconds", "ms", &series, XAxis::Linear, slo_ms)
}

fn throughput_chart(panel: &Panel<'_>) -> String {
    let ok = panel.seconds.iter().map(|s| (s.t_s as f64, s.ok as f64)).collect();
    let sent = panel.seconds.iter().map(|s| (s.t_s as f64, s.sent as f64)).collect();
    let errors = panel.seconds.iter().map(|s| (s.t_s as f64, s.errors.values().sum::<u64>() as f64)).collect();
    let series = [Series::line("answered ok/s", ok), Series::line("sent/s", sent), Series::line("errors/s", errors)];
    chart(
        &format!("{}: throughput and errors", panel.title),
        "seconds",
        "requests per second",
        &series,
        XAxis::Linear,
        None,
    )
}

fn server_charts(panel: &Panel<'_>) -> Option<String> {
    let points: Vec<_> = panel.seconds.iter().filter_map(|s| s.server.map(|p| (s.t_s as f64, p))).collect();
    if points.is_empty() {
        return None;
    }
    let cpu = [Series::line("CPU % of one core", points.iter().map(|(t, p)| (*t, p.cpu_percent)).collect())];
    let rss = [Series::line("RSS MiB", points.iter().map(|(t, p)| (*t, p.rss_kib as f64 / 1024.0)).collect())];
    Some(
        chart(&format!("{}: gateway CPU", panel.title), "seconds", "% of one core", &cpu, XAxis::Linear, None)
            + &chart(&format!("{}: gateway memory", panel.title), "seconds", "MiB", &rss, XAxis::Linear, None),
    )
}

fn distribution_points(distribution: &[DistributionPoint]) -> Vec<(f64, f64)> {
    distribution
        .iter()
        .map(|p| {
            let q = p.percentile / 100.0;
            let x = if q >= 1.0 { NINES } else { (1.0 / (1.0 - q)).log10().min(NINES) };
            (x, p.latency_us / 1e3)
        })
        .collect()
}

fn steps_chart(search: &Search, slo_ms: Option<f64>) -> String {
    let pass = search.steps.iter().filter(|s| s.passed).map(|s| (s.rate, s.latency_us / 1e3)).collect();
    let fail = search.steps.iter().filter(|s| !s.passed).map(|s| (s.rate, s.latency_us / 1e3)).collect();
    let series = [
        Series { name: "meets the SLO".into(), points: pass, dots: true },
        Series { name: "misses it".into(), points: fail, dots: true },
    ];
    chart(
        &format!("{}: find-max steps", search.mode),
        "offered requests per second",
        "latency at the SLO percentile, ms",
        &series,
        XAxis::Linear,
        slo_ms,
    )
}

fn run_row(run: &RunResult) -> String {
    let p = &run.latency_us;
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(run.mode),
        run.ok,
        run.failed,
        run.throughput_rps,
        escape(&human_us(p.p50)),
        escape(&human_us(p.p90)),
        escape(&human_us(p.p99)),
        escape(&human_us(p.max)),
        escape(&run.server.map_or("-".to_owned(), |s| human_us(s.cpu_us_per_request)))
    )
}

fn config_rows(config: &serde_json::Value) -> String {
    let mut rows = String::new();
    if let Some(map) = config.as_object() {
        for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", escape(key), escape(&value));
        }
    }
    rows
}

/// The whole page; `slo_ms` is the find-max SLO's latency bound, drawn on the charts.
pub fn render(report: &Report, slo_ms: Option<f64>) -> String {
    let mut panels: Vec<Panel<'_>> = report
        .runs
        .iter()
        .map(|r| Panel { title: r.mode.to_owned(), seconds: &r.timeseries, distribution: &r.latency_distribution_us })
        .collect();
    panels.extend(report.find_max.iter().map(|s| Panel {
        title: format!("{} search", s.mode),
        seconds: &s.timeseries,
        distribution: s.best.as_ref().map_or(&[][..], |b| &b.latency_distribution_us),
    }));

    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sealgate-load report</title><style>\
         body{font-family:system-ui,sans-serif;margin:24px;color:#202020;background:#fafafa}\
         h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
         .row{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;background:#ffffff;border:1px solid #dddddd}\
         .title{font-size:13px;font-weight:600}.tick{font-size:10px;fill:#555555}.label{font-size:11px;fill:#333333}\
         .legend{font-size:11px}.empty{font-size:13px;fill:#999999}\
         table{border-collapse:collapse;background:#ffffff}td,th{border:1px solid #dddddd;padding:4px 8px;text-align:left;font-size:13px}\
         .error{background:#fde8e8;border:1px solid #b00020;padding:8px 12px}\
         </style></head><body>\n",
    );
    let _ = write!(page, "<h1>sealgate-load {} report</h1>", escape(report.version));
    if let Some(error) = &report.error {
        let _ = write!(page, "<p class=\"error\">Partial report: {}</p>", escape(error));
    }

    page.push_str("<h2>Summary</h2>");
    if !report.runs.is_empty() {
        page.push_str(
            "<table><tr><th>run</th><th>ok</th><th>failed</th><th>req/s</th><th>p50</th><th>p90</th><th>p99</th>\
             <th>max</th><th>server CPU per request</th></tr>",
        );
        for run in &report.runs {
            page.push_str(&run_row(run));
        }
        page.push_str("</table>");
    }
    if let Some(ratio) = &report.ratio {
        let _ = write!(
            page,
            "<p>Encrypted vs plaintext: throughput {:.3}×, p50 latency {:.3}×, p99 latency {:.3}×.</p>",
            ratio.throughput, ratio.p50_latency, ratio.p99_latency
        );
    }
    if !report.find_max.is_empty() {
        page.push_str("<table><tr><th>search</th><th>SLO</th><th>highest rate meeting it</th><th>steps</th></tr>");
        for search in &report.find_max {
            let rate = match search.max_rate {
                Some(r) if search.capped => format!("{r:.0} req/s (the --max-rate cap)"),
                Some(r) => format!("{r:.0} req/s"),
                None => "none".to_owned(),
            };
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(search.mode),
                escape(&search.slo),
                escape(&rate),
                search.steps.len()
            );
        }
        page.push_str("</table>");
        if let Some(ratio) = report.find_max_ratio {
            let _ = write!(page, "<p>Highest encrypted rate / highest plaintext rate: {ratio:.3}×.</p>");
        }
    }

    let section = |page: &mut String, title: &str, charts: Vec<String>| {
        if !charts.is_empty() {
            let _ = write!(page, "<h2>{}</h2><div class=\"row\">{}</div>", escape(title), charts.concat());
        }
    };
    section(&mut page, "Latency percentiles over time", panels.iter().map(|p| latency_chart(p, slo_ms)).collect());
    section(&mut page, "Throughput and errors over time", panels.iter().map(throughput_chart).collect());
    let distributions: Vec<Series> = panels
        .iter()
        .filter(|p| !p.distribution.is_empty())
        .map(|p| Series::line(p.title.clone(), distribution_points(p.distribution)))
        .collect();
    section(
        &mut page,
        "Latency distribution (HdrHistogram percentile plot)",
        vec![chart("latency by percentile", "percentile", "ms", &distributions, XAxis::Percentile, slo_ms)],
    );
    section(&mut page, "Find-max steps", report.find_max.iter().map(|s| steps_chart(s, slo_ms)).collect());
    section(&mut page, "Gateway CPU and memory (--server-pid)", panels.iter().filter_map(server_charts).collect());
    let _ = write!(page, "<h2>Configuration</h2><table>{}</table>", config_rows(&report.config));
    page.push_str("\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::Recorder;
    use crate::target::{ErrorKind, Mode, Outcome};

    fn run(mode: Mode, slow_ms: u64) -> RunResult {
        let mut r = Recorder::new();
        for i in 0..300u64 {
            let latency = Duration::from_millis(if i % 100 == 0 { slow_ms } else { 2 });
            r.record(Duration::from_millis(i * 10), latency, Outcome::Ok { crypto: None, resent: 0 });
        }
        r.record(
            Duration::from_secs(2),
            Duration::from_millis(1),
            Outcome::Failed { kind: ErrorKind::Transport, status: None, message: "<refused & gone>".into() },
        );
        r.finish(mode, Duration::from_secs(3))
    }

    fn report() -> Report {
        Report {
            tool: "sealgate-load",
            version: "0.0.0",
            config: serde_json::json!({"url": "https://127.0.0.1:1/", "model": "<img onerror=x>", "rate": 10}),
            runs: vec![run(Mode::Encrypted, 40), run(Mode::Plaintext, 20)],
            ratio: None,
            find_max: Vec::new(),
            find_max_ratio: None,
            error: Some("the gateway became unreachable mid-run (\"refused\")".into()),
        }
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let page = render(&report(), Some(10.0));
        for forbidden in ["src=", "href=", "<script", "url(", "@import", "<img", "<link"] {
            assert!(!page.contains(forbidden), "{forbidden} in the page");
        }
        assert!(page.contains("&lt;img onerror=x&gt;"), "the model name is escaped");
        assert!(page.contains("Partial report: the gateway became unreachable mid-run (&quot;refused&quot;)"));
        // Latency and throughput for both runs, and one distribution chart.
        assert_eq!(page.matches("<svg").count(), 5, "{page}");
        assert_eq!(page.matches("<polyline").count(), 4 * 2 + 3 * 2 + 2);
        assert!(page.contains("99.99%"), "the percentile axis is labelled");
    }

    #[test]
    fn charts_survive_empty_and_degenerate_data() {
        assert!(chart("t", "x", "y", &[], XAxis::Linear, None).contains("no data"));
        let flat = [Series::line("s", vec![(0.0, 0.0), (0.0, 0.0)])];
        let svg = chart("t", "x", "y", &flat, XAxis::Linear, None);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let nan = [Series::line("s", vec![(1.0, f64::NAN), (2.0, 3.0)])];
        assert!(!chart("t", "x", "y", &nan, XAxis::Linear, Some(1.0)).contains("NaN"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(0.7), 0.2);
        assert_eq!(tick_step(4500.0), 1000.0);
        assert_eq!(tick_step(0.0), 1.0);
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2000.0), "2000");
    }
}
