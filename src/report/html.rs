//! The HTML report: `matrix.html`, the overview (summary, launch list, the HIS × PGO matrix with
//! a summary per cell), and one page per cell (`cells/<row>/<column>/index.html`: the GP record
//! by category, every scenario's checks and steps), and one page per scenario's recorded
//! exchanges beside its exchange file (`cells/<row>/<column>/<side>/<scenario>.html`). Every
//! page is self-contained (inline CSS, no scripts, no external resources); the overview does not
//! grow with the evidence, no page holds more than one cell's, and a cell's page holds no
//! exchange bodies, so it is written from report.json alone.

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use super::{CellReport, RunReport, ScenarioReport};

const OVERVIEW: &str = include_str!("matrix.html.j2");
const CELL: &str = include_str!("cell.html.j2");
const EXCHANGES: &str = include_str!("exchanges.html.j2");
const STYLE: &str = include_str!("style.css");

/// The templates, compiled once per process (a run renders a page per scenario).
fn environment() -> Result<&'static Environment<'static>, minijinja::Error> {
    static ENV: std::sync::OnceLock<Result<Environment<'static>, String>> =
        std::sync::OnceLock::new();
    let compiled = ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_template("matrix.html", OVERVIEW)
            .and_then(|()| env.add_template("cell.html", CELL))
            .and_then(|()| env.add_template("exchanges.html", EXCHANGES))
            .map(|()| env)
            .map_err(|e| e.to_string())
    });
    compiled
        .as_ref()
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.clone()))
}

/// `matrix.html`: the overview. Cells link to their pages (`CellReport::page`).
pub fn render(report: &RunReport) -> Result<String, minijinja::Error> {
    let env = environment()?;
    env.get_template("matrix.html")?.render(context! {
        report => Value::from(Serde(report)),
        style => STYLE,
    })
}

/// One cell's page; `back` is the relative link to `matrix.html`. Each scenario links to its
/// exchanges page ([`exchanges_page`] of its `exchanges_file`).
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
    // Each scenario's exchanges page, relative to the cell's page (in the cell's folder).
    let own = format!("{}/", super::cell_dir(&cell.row, &cell.column));
    let pages: Vec<Option<String>> = cell
        .scenarios
        .iter()
        .map(|s| {
            let file = s.exchanges_file.as_deref()?;
            Some(exchanges_page(file.strip_prefix(&own)?))
        })
        .collect();
    env.get_template("cell.html")?.render(context! {
        report => header,
        cell => Value::from(Serde(cell)),
        pages => pages,
        back => back,
        style => STYLE,
    })
}

/// The exchanges page of the exchange file `json`: the same path ending in `.html`.
pub fn exchanges_page(json: &str) -> String {
    format!("{}.html", json.strip_suffix(".json").unwrap_or(json))
}

/// The page of `scenario`'s recorded exchanges (in memory), written beside its exchange file
/// `json` (a relative path whose file name is used as the link): each exchange anchored
/// `x-<seq>`, for the cell page's evidence links. It holds the scenario and its exchanges
/// only, nothing of the run, so a merged run links a shard's page as it is.
pub fn render_exchanges(
    row: &str,
    column: &str,
    scenario: &ScenarioReport,
    json: &str,
) -> Result<String, minijinja::Error> {
    let env = environment()?;
    let json = json.rsplit('/').next().unwrap_or(json);
    env.get_template("exchanges.html")?.render(context! {
        row => row,
        column => column,
        scenario => context! {
            id => &scenario.id,
            title => &scenario.title,
            side => Value::from(Serde(scenario.side)),
        },
        exchanges => Value::from(Serde(&scenario.exchanges)),
        json => json,
        style => STYLE,
    })
}
