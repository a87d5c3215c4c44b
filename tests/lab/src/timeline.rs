//! Timeline pictures of a benchmark run, as SVG: one row for the client (each 10 ms probe
//! slot green when served, red when it failed) and one row per node (filled while the node
//! held the VIP), with the fault and its end marked. Drawn with `plotters`' SVG backend and
//! its built-in text estimate, so no system font is needed.

use std::path::Path;

use plotters::prelude::*;

use super::testbed::NODES;
use super::LabError;

/// What one picture shows; times are ms from the start of the run.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Title line (agent, timers, scenario, the headline number).
    pub title: String,
    /// Client requests: (start, served).
    pub probes: Vec<(f64, bool)>,
    /// Holder samples: (time, bit `i` set while node `i` holds the VIP).
    pub holders: Vec<(f64, u32)>,
    /// Marks: (time, label), e.g. the fault and its end.
    pub marks: Vec<(f64, String)>,
    /// End of the picture.
    pub end_ms: f64,
}

const WIDTH: u32 = 960;
const LEFT: i32 = 70;
const RIGHT: i32 = 20;
const TOP: i32 = 34;
const ROW: i32 = 26;
const GAP: i32 = 8;
const OK: RGBColor = RGBColor(60, 170, 80);
const FAILED: RGBColor = RGBColor(220, 50, 40);
const HOLDS: RGBColor = RGBColor(50, 100, 200);
const TWO: RGBColor = RGBColor(240, 150, 0);

/// Runs of equal values: (from, to, value), each sample lasting until the next one.
fn runs<T: Copy + PartialEq>(samples: &[(f64, T)], end: f64, step: f64) -> Vec<(f64, f64, T)> {
    let mut out: Vec<(f64, f64, T)> = Vec::new();
    for (i, &(at, v)) in samples.iter().enumerate() {
        let next = samples.get(i + 1).map_or((at + step).min(end), |n| n.0);
        match out.last_mut() {
            Some(last) if last.2 == v && (at - last.1).abs() < 2.0 * step => last.1 = next,
            _ => out.push((at, next, v)),
        }
    }
    out
}

/// Writes `t` as an SVG file at `path`.
pub fn write_svg(t: &Timeline, path: &Path) -> Result<(), LabError> {
    let rows = 1 + NODES.len() as i32;
    let height = (TOP + rows * (ROW + GAP) + 40) as u32;
    let err = |e: String| LabError::Setup(format!("{}: {e}", path.display()));
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let span = t.end_ms.max(1.0);
    let plot_w = f64::from(WIDTH as i32 - LEFT - RIGHT);
    let x = |ms: f64| LEFT + (ms.clamp(0.0, span) / span * plot_w).round() as i32;
    let font = ("sans-serif", 14).into_font();
    let small = ("sans-serif", 12).into_font();
    let draw =
        |r: Result<(), DrawingAreaErrorKind<std::io::Error>>| r.map_err(|e| err(e.to_string()));
    draw(root.draw(&Text::new(t.title.clone(), (LEFT, 8), font.clone())))?;
    let row_top = |r: i32| TOP + r * (ROW + GAP);
    // The client row.
    draw(root.draw(&Text::new("client", (6, row_top(0) + 6), font.clone())))?;
    for (from, to, ok) in runs(&t.probes, span, 10.0) {
        let colour = if ok { OK } else { FAILED };
        draw(root.draw(&Rectangle::new(
            [
                (x(from), row_top(0)),
                (x(to).max(x(from) + 1), row_top(0) + ROW),
            ],
            colour.filled(),
        )))?;
    }
    // One row per node; orange where two or more held it at once.
    for (i, name) in NODES.iter().enumerate() {
        let r = 1 + i as i32;
        draw(root.draw(&Text::new(*name, (6, row_top(r) + 6), font.clone())))?;
        draw(root.draw(&Rectangle::new(
            [(LEFT, row_top(r)), (WIDTH as i32 - RIGHT, row_top(r) + ROW)],
            RGBColor(235, 235, 235).filled(),
        )))?;
        let mine: Vec<(f64, (bool, bool))> = t
            .holders
            .iter()
            .map(|&(at, m)| (at, (m & (1 << i) != 0, m.count_ones() > 1)))
            .collect();
        for (from, to, (holds, two)) in runs(&mine, span, 10.0) {
            if holds {
                let colour = if two { TWO } else { HOLDS };
                draw(root.draw(&Rectangle::new(
                    [
                        (x(from), row_top(r)),
                        (x(to).max(x(from) + 1), row_top(r) + ROW),
                    ],
                    colour.filled(),
                )))?;
            }
        }
    }
    let bottom = row_top(rows) - GAP;
    for (at, label) in &t.marks {
        draw(root.draw(&PathElement::new(
            vec![(x(*at), TOP - 4), (x(*at), bottom + 4)],
            BLACK.stroke_width(1),
        )))?;
        draw(root.draw(&Text::new(
            label.clone(),
            (x(*at) + 3, bottom + 6),
            small.clone(),
        )))?;
    }
    // A time axis: a tick every 1, 2, 5, 10, ... s so that there are at most ~12.
    let step = [
        100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 20_000.0,
    ]
    .into_iter()
    .find(|s| span / s <= 12.0)
    .unwrap_or(60_000.0);
    let axis_y = bottom + 22;
    draw(root.draw(&PathElement::new(
        vec![(LEFT, axis_y), (WIDTH as i32 - RIGHT, axis_y)],
        BLACK.stroke_width(1),
    )))?;
    let mut tick = 0.0;
    while tick <= span {
        draw(root.draw(&PathElement::new(
            vec![(x(tick), axis_y), (x(tick), axis_y + 4)],
            BLACK.stroke_width(1),
        )))?;
        let label = if step >= 1000.0 {
            format!("{:.0} s", tick / 1000.0)
        } else {
            format!("{:.1} s", tick / 1000.0)
        };
        draw(root.draw(&Text::new(label, (x(tick) - 8, axis_y + 6), small.clone())))?;
        tick += step;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_samples_merge_into_one_run_and_a_change_starts_another() {
        let s = [(0.0, true), (10.0, true), (20.0, false), (30.0, true)];
        let r = runs(&s, 40.0, 10.0);
        assert_eq!(
            r,
            vec![(0.0, 20.0, true), (20.0, 30.0, false), (30.0, 40.0, true)]
        );
    }

    #[test]
    fn the_picture_shows_every_row_and_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.svg");
        let t = Timeline {
            title: "haagent default link-down".into(),
            probes: vec![(0.0, true), (10.0, false), (20.0, true)],
            holders: vec![(0.0, 1), (10.0, 3), (20.0, 2)],
            marks: vec![(5.0, "fault".into())],
            end_ms: 30.0,
        };
        write_svg(&t, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in [
            "client",
            "n1",
            "n2",
            "n3",
            "fault",
            "haagent default link-down",
        ] {
            assert!(svg.contains(text), "{text} missing:\n{svg}");
        }
        assert!(svg.contains("<rect"), "{svg}");
    }
}
