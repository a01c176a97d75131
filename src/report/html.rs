//! The HTML report: `matrix.html`, the overview (summary, launch list, the HIS × PGO matrix with
//! a summary per cell), and one page per cell (`cells/<row>/<column>/index.html`: the GP record
//! by category, every scenario's checks, steps and recorded exchanges behind `<details>`). Every
//! page is self-contained (inline CSS, no scripts, no external resources); the overview does not
//! grow with the evidence, and no page holds more than one cell's.

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use super::{CellReport, RunReport};

const OVERVIEW: &str = include_str!("matrix.html.j2");
const CELL: &str = include_str!("cell.html.j2");
const STYLE: &str = include_str!("style.css");

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("matrix.html", OVERVIEW)?;
    env.add_template("cell.html", CELL)?;
    Ok(env)
}

/// `matrix.html`: the overview. Cells link to their pages (`CellReport::page`).
pub fn render(report: &RunReport) -> Result<String, minijinja::Error> {
    let env = environment()?;
    env.get_template("matrix.html")?.render(context! {
        report => Value::from(Serde(report)),
        style => STYLE,
    })
}

/// One cell's page, with its scenarios' exchanges (loaded by the caller); `back` is the
/// relative link to `matrix.html`.
pub fn render_cell(
    report: &RunReport,
    cell: &CellReport,
    back: &str,
) -> Result<String, minijinja::Error> {
    let env = environment()?;
    // The run's header without its cells: the page carries one cell, not the run.
    let header = context! {
        run_id => &report.run_id,
        koppeltest_version => &report.koppeltest_version,
        matrix => context! { name => &report.matrix.name },
    };
    env.get_template("cell.html")?.render(context! {
        report => header,
        cell => Value::from(Serde(cell)),
        back => back,
        style => STYLE,
    })
}
