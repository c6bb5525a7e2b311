//! The demo's plot: accuracy over event time, one line per pipeline, with the triggers
//! marked, as a PNG (plotters draws it into a buffer; the `image` crate encodes it).

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The font the labels are drawn with (DejaVu Sans; its licence is beside it).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 600;

/// A line: a name and its points (hours of event time since the stream began, accuracy).
pub(crate) struct Line {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// Draws `lines` and the triggers (hours of event time) into a PNG at `path`.
pub(crate) fn accuracy_png(
    path: &Path,
    title: &str,
    lines: &[Line],
    triggers: &[f64],
) -> anyhow::Result<()> {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        assert!(
            register_font("sans-serif", FontStyle::Normal, FONT).is_ok(),
            "the bundled font loads"
        );
    });
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(triggers.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the plot: {e}");
        root.fill(&WHITE).map_err(draw)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max * 1.01, 0f64..1.0f64)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc("event time (hours since the stream began)")
            .y_desc("accuracy")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(draw)?;
        for &t in triggers {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0.0), (t, 1.0)],
                    RED.mix(0.35),
                )))
                .map_err(draw)?;
        }
        if !triggers.is_empty() {
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                .map_err(draw)?
                .label("trigger")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.mix(0.5)));
        }
        for (i, line) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw)?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw)?;
        root.present().map_err(draw)?;
    }
    image::save_buffer(path, &buffer, WIDTH, HEIGHT, image::ColorType::Rgb8)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_of_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let lines = [
            Line {
                name: "pipeline a".into(),
                points: vec![(0.5, 0.9), (1.0, 0.6), (1.5, 0.95)],
            },
            Line {
                name: "pipeline b".into(),
                points: vec![(0.5, 0.8), (1.5, 0.7)],
            },
        ];
        accuracy_png(&path, "accuracy", &lines, &[0.9]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        // not blank: the lines and labels are drawn in colours other than white
        let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(coloured > 5_000, "{coloured}");
        let e = accuracy_png(&dir.path().join("no/such/dir/a.png"), "t", &lines, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("writing"), "{e:#}");
    }
}
