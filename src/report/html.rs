//! `matrix.html`: one self-contained file (inline CSS, no scripts, no external resources): the
//! HIS × PGO matrix with coloured cells, and per cell every scenario's checks, steps and
//! recorded exchanges behind `<details>`.

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use super::RunReport;

const TEMPLATE: &str = include_str!("matrix.html.j2");

pub fn render(report: &RunReport) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("matrix.html", TEMPLATE)?;
    let tmpl = env.get_template("matrix.html")?;
    tmpl.render(context! { report => Value::from(Serde(report)) })
}
