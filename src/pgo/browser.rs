//! A small, honest user agent: HTML forms found and submitted, redirects followed one hop at a
//! time, every hop recorded. No JavaScript: auto-submitting SAML forms are recognised by their
//! `SAMLRequest`/`SAMLResponse`/`SAMLart` fields, the other forms by configurable CSS selectors
//! so a real DVA's landing and consent pages can be driven too.
//!
//! Pages are parsed the way a browser parses them (html5ever implements the HTML5 parsing
//! algorithm), with scripting off because nothing here runs scripts: markup inside comments,
//! `<script>`, `<textarea>` or `<template>` is no form, `>` may stand inside a quoted attribute
//! value, and every character reference (`&#43;`, `&#x2F;`, `&plus;`) is decoded. The values
//! submitted follow the HTML form-submission rules a login or consent page relies on: form
//! owners (including the `form` attribute), disabled controls and fieldsets, checked boxes, the
//! selected options of a select.
//!
//! Deliberately not here: scripts, styles, `<base href>`, file uploads, image buttons and
//! `formaction`; the caller resolves `action` against the page URL.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use html5ever::tendril::TendrilSink;
use schemars::JsonSchema;
use scraper::{ElementRef, Html, HtmlTreeSink, Selector};
use serde::{Deserialize, Serialize};

/// Picks a form and the button to press in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormSelector {
    /// A CSS selector for the `<form>` element, matched in its page: `#id`, `[action*=text]`
    /// (action contains), `[action$=text]` (action ends with) or any other CSS selector
    /// (`main form.consent`, `form:nth-of-type(2)`). Two older shapes that are not CSS stay
    /// accepted: `#` with any id (`#1st`), and an unquoted value that is no CSS identifier
    /// (`[action*=/oauth/login]`).
    pub form: String,
    /// The button to press, `name=value`.
    pub submit: String,
    /// The button that refuses or cancels, `name=value`, if the page has one.
    #[serde(default)]
    pub refuse: Option<String>,
}

/// Selectors for the pages of one DVA (and the TVS login page).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    #[serde(default = "default_landing")]
    pub landing: FormSelector,
    #[serde(default = "default_consent")]
    pub consent: FormSelector,
    #[serde(default = "default_tvs_login")]
    pub tvs_login: FormSelector,
}

impl Default for Selectors {
    fn default() -> Self {
        Selectors {
            landing: default_landing(),
            consent: default_consent(),
            tvs_login: default_tvs_login(),
        }
    }
}

fn default_landing() -> FormSelector {
    FormSelector {
        form: "#kt-landing".into(),
        submit: "login=digid".into(),
        refuse: None,
    }
}

fn default_consent() -> FormSelector {
    FormSelector {
        form: "#kt-consent".into(),
        submit: "decision=approve".into(),
        refuse: Some("decision=deny".into()),
    }
}

fn default_tvs_login() -> FormSelector {
    FormSelector {
        form: "#kt-tvs-login".into(),
        submit: "action=login".into(),
        refuse: Some("action=cancel".into()),
    }
}

/// A form as found in a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub id: Option<String>,
    pub action: String,
    pub method: String,
    /// Inputs, selects and textareas with their current values, in document order.
    pub fields: Vec<(String, String)>,
    /// Submit buttons: (name, value).
    pub buttons: Vec<(String, String)>,
    /// The page the form was found in, so that a selector is matched in context.
    source: Option<Source>,
}

/// A page and the position of one form among its forms. The page is kept as text, not as a
/// parsed tree: html5ever's trees cannot leave their thread, and a `Form` may.
#[derive(Clone, PartialEq, Eq)]
struct Source {
    html: Arc<str>,
    index: usize,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "form {} of a page of {} bytes",
            self.index + 1,
            self.html.len()
        )
    }
}

/// A form selector that is not CSS, nor one of the older shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse form selector {selector:?}: {reason}")]
pub struct InvalidSelector {
    pub selector: String,
    pub reason: String,
}

/// Whether `selector` can pick a form (see [`FormSelector::form`]); a matrix is refused at
/// load time for a selector that cannot, rather than failing later with "no form matched".
pub fn check_selector(selector: &str) -> Result<(), InvalidSelector> {
    form_selector(selector).map(drop)
}

impl Form {
    /// Whether the CSS `selector` matches this form's `<form>` element in its page. A selector
    /// that does not parse matches nothing ([`check_selector`] says why); it never panics.
    pub fn matches(&self, selector: &str) -> bool {
        let Ok(selector) = form_selector(selector) else {
            return false;
        };
        let own_tag;
        let (html, index) = match &self.source {
            Some(source) => (&*source.html, source.index),
            // A form made by hand has no page: match against its own attributes.
            None => {
                own_tag = self.as_element();
                (own_tag.as_str(), 0)
            }
        };
        let doc = parse(html);
        live_forms(&doc)
            .get(index)
            .is_some_and(|form| selector.matches(form))
    }

    /// The `<form>` start tag this form would have, for a form without a page.
    fn as_element(&self) -> String {
        let attr = |name: &str, value: &str| {
            format!(
                " {name}=\"{}\"",
                value.replace('&', "&amp;").replace('"', "&quot;")
            )
        };
        let mut tag = String::from("<form");
        if let Some(id) = &self.id {
            tag.push_str(&attr("id", id));
        }
        tag.push_str(&attr("action", &self.action));
        tag.push_str(&attr("method", &self.method));
        tag.push_str("></form>");
        tag
    }

    /// A SAML binding form that a browser would auto-submit with JavaScript.
    pub fn is_saml_autopost(&self) -> bool {
        self.fields
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "SAMLRequest" | "SAMLResponse" | "SAMLart"))
    }

    /// The fields to submit: the form's own, `overrides` replacing values, plus `button`.
    pub fn submission(
        &self,
        overrides: &[(&str, String)],
        button: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .fields
            .iter()
            .map(|(k, v)| match overrides.iter().find(|(o, _)| o == k) {
                Some((_, nv)) => (k.clone(), nv.clone()),
                None => (k.clone(), v.clone()),
            })
            .collect();
        if let Some((name, value)) = button.and_then(|b| b.split_once('=')) {
            out.push((name.to_string(), value.to_string()));
        }
        out
    }
}

/// The page title as a browser shows it (whitespace collapsed), for evidence.
pub fn title(html: &str) -> Option<String> {
    let doc = parse(html);
    let title = elements(&doc).find(|e| e.value().name() == "title")?;
    Some(collapse_whitespace(&title.text().collect::<String>()))
}

/// Every form in `html`, in document order, with the values a browser would submit.
pub fn forms(html: &str) -> Vec<Form> {
    let page: Arc<str> = Arc::from(html);
    let doc = parse(html);
    let live = live_forms(&doc);
    let mut out: Vec<Form> = live
        .iter()
        .enumerate()
        .map(|(index, form)| {
            let el = form.value();
            Form {
                id: el.attr("id").map(str::to_string),
                action: el.attr("action").unwrap_or_default().to_string(),
                method: el.attr("method").unwrap_or("get").to_ascii_lowercase(),
                fields: Vec::new(),
                buttons: Vec::new(),
                source: Some(Source {
                    html: page.clone(),
                    index,
                }),
            }
        })
        .collect();
    let form_index: HashMap<_, usize> = live.iter().enumerate().map(|(i, f)| (f.id(), i)).collect();
    // `form="x"` names the first element in the document with id x (if that is a form).
    let mut first_with_id = HashMap::new();
    for e in elements(&doc) {
        if let Some(id) = e.value().attr("id").filter(|id| !id.is_empty()) {
            first_with_id.entry(id).or_insert(e.id());
        }
    }
    for control in elements(&doc) {
        if !matches!(
            control.value().name(),
            "input" | "button" | "select" | "textarea"
        ) {
            continue;
        }
        let owner = match control.value().attr("form") {
            Some(id) => first_with_id.get(id).copied(),
            None => control
                .ancestors()
                .filter_map(ElementRef::wrap)
                .find(|a| is_html(*a, "form"))
                .map(|f| f.id()),
        };
        let Some(&i) = owner.and_then(|o| form_index.get(&o)) else {
            continue;
        };
        if !is_disabled(control) {
            add_control(&mut out[i], control);
        }
    }
    out
}

/// Adds what `control` contributes to its form: the form data set entries, or a submit button.
fn add_control(form: &mut Form, control: ElementRef<'_>) {
    let el = control.value();
    let Some(name) = el.attr("name").filter(|n| !n.is_empty()) else {
        return;
    };
    let name = name.to_string();
    let value = || el.attr("value").unwrap_or_default().to_string();
    match el.name() {
        "input" => match el
            .attr("type")
            .unwrap_or("text")
            .to_ascii_lowercase()
            .as_str()
        {
            "submit" => form.buttons.push((name, value())),
            "checkbox" | "radio" => {
                if el.attr("checked").is_some() {
                    form.fields
                        .push((name, el.attr("value").unwrap_or("on").to_string()));
                }
            }
            // Never part of the data set (an image button only as the one pressed).
            "button" | "reset" | "image" => {}
            // No file is ever chosen.
            "file" => form.fields.push((name, String::new())),
            _ => form.fields.push((name, value())),
        },
        "button" => {
            // A missing or unknown type is a submit button.
            let kind = el.attr("type").map(str::to_ascii_lowercase);
            if !matches!(kind.as_deref(), Some("button" | "reset")) {
                form.buttons.push((name, value()));
            }
        }
        "select" => {
            for v in selected_options(control) {
                form.fields.push((name.clone(), v));
            }
        }
        "textarea" => form.fields.push((name, control.text().collect())),
        _ => {}
    }
}

/// The values a select submits: its selected options (the last one if it takes only one), or
/// for a drop-down with none selected its first enabled option.
fn selected_options(select: ElementRef<'_>) -> Vec<String> {
    let options: Vec<ElementRef<'_>> = select
        .descendent_elements()
        .filter(|e| is_html(*e, "option"))
        .collect();
    let enabled = |o: &ElementRef<'_>| {
        o.value().attr("disabled").is_none()
            && !o
                .parent()
                .and_then(ElementRef::wrap)
                .is_some_and(|p| is_html(p, "optgroup") && p.value().attr("disabled").is_some())
    };
    let value = |o: &ElementRef<'_>| match o.value().attr("value") {
        Some(v) => v.to_string(),
        None => collapse_whitespace(&o.text().collect::<String>()),
    };
    let mut selected = options
        .iter()
        .filter(|o| o.value().attr("selected").is_some());
    if select.value().attr("multiple").is_some() {
        return selected.filter(|o| enabled(o)).map(value).collect();
    }
    if let Some(last) = selected.next_back() {
        return if enabled(last) {
            vec![value(last)]
        } else {
            Vec::new()
        };
    }
    // A list box (`size` above 1) selects nothing by itself; a drop-down shows its first option.
    let size = select
        .value()
        .attr("size")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1);
    if size > 1 {
        return Vec::new();
    }
    options
        .iter()
        .find(|o| enabled(o))
        .map(value)
        .into_iter()
        .collect()
}

/// Disabled itself, or inside a disabled fieldset (but not in that fieldset's first legend).
fn is_disabled(control: ElementRef<'_>) -> bool {
    if control.value().attr("disabled").is_some() {
        return true;
    }
    let mut below = control.id();
    for ancestor in control.ancestors() {
        if let Some(fieldset) = ElementRef::wrap(ancestor) {
            if is_html(fieldset, "fieldset") && fieldset.value().attr("disabled").is_some() {
                let first_legend = fieldset
                    .children()
                    .filter_map(ElementRef::wrap)
                    .find(|c| is_html(*c, "legend"))
                    .map(|l| l.id());
                if first_legend != Some(below) {
                    return true;
                }
            }
        }
        below = ancestor.id();
    }
    false
}

/// How deep the document's elements nest, counted in one linear walk (the tree is an arena, so
/// neither this nor dropping it recurses).
pub fn nesting_depth(doc: &Html) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(doc.tree.root(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        stack.extend(node.children().map(|c| (c, depth + 1)));
    }
    deepest
}

/// Why the browser will not read this page: nesting beyond
/// [`crate::limits::MAX_HTML_DEPTH`], which every form and ancestor look-up would walk (10,000
/// nested forms took the browser most of a minute).
pub fn too_deep(html: &str) -> Option<String> {
    let depth = nesting_depth(&parse(html));
    (depth > crate::limits::MAX_HTML_DEPTH).then(|| {
        format!(
            "the page nests elements {depth} deep, more than the browser reads ({})",
            crate::limits::MAX_HTML_DEPTH
        )
    })
}

/// Parses like a browser with scripting off: `<noscript>` content is markup, as it is for a
/// user agent that runs no scripts.
fn parse(html: &str) -> Html {
    let opts = html5ever::ParseOpts {
        tree_builder: html5ever::tree_builder::TreeBuilderOpts {
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    html5ever::parse_document(HtmlTreeSink::new(Html::new_document()), opts).one(html)
}

/// The document's HTML elements in tree order, without `<template>` contents (inert in a
/// browser: never rendered, never submitted).
fn elements(doc: &Html) -> impl Iterator<Item = ElementRef<'_>> {
    doc.tree
        .root()
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| e.value().name.ns == html5ever::ns!(html))
        .filter(|e| {
            !e.ancestors()
                .filter_map(ElementRef::wrap)
                .any(|a| is_html(a, "template"))
        })
}

/// The page's forms, in the order [`forms`] returns them.
fn live_forms(doc: &Html) -> Vec<ElementRef<'_>> {
    elements(doc)
        .filter(|e| e.value().name() == "form")
        .collect()
}

fn is_html(e: ElementRef<'_>, local: &str) -> bool {
    e.value().name.ns == html5ever::ns!(html) && e.value().name() == local
}

fn collapse_whitespace(s: &str) -> String {
    s.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// The CSS selector for a form, or one of the two older shapes rewritten as CSS.
fn form_selector(selector: &str) -> Result<Selector, InvalidSelector> {
    let s = selector.trim();
    let reason = match Selector::parse(s) {
        Ok(css) => return Ok(css),
        Err(e) => e.to_string(),
    };
    older_shape(s)
        .and_then(|css| Selector::parse(&css).ok())
        .ok_or_else(|| InvalidSelector {
            selector: selector.to_string(),
            reason,
        })
}

/// `#1st` and `[action*=/oauth/login]` are not CSS (an id or an unquoted value must be an
/// identifier) but were accepted before selectors were CSS: quote them.
fn older_shape(s: &str) -> Option<String> {
    if let Some(id) = s.strip_prefix('#').filter(|id| !id.is_empty()) {
        return Some(format!("[id={}]", css_string(id)));
    }
    for op in ["*=", "$="] {
        let prefix = format!("[action{op}");
        if let Some(value) = s.strip_prefix(&prefix).and_then(|r| r.strip_suffix(']')) {
            return Some(format!(
                "[action{op}{}]",
                css_string(value.trim_matches('"'))
            ));
        }
    }
    None
}

/// `value` as a quoted CSS string.
fn css_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\{:x} ", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_nested_beyond_the_limit_is_refused_in_linear_time() {
        let deep = "<div>".repeat(10_000);
        let started = std::time::Instant::now();
        let reason = too_deep(&deep).expect("too deep");
        assert!(
            reason.contains("more than the browser reads (256)"),
            "{reason}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(too_deep("<form><input name=a></form>"), None);
    }

    #[test]
    fn finds_forms_fields_buttons_and_selects() {
        let html = r#"<html><title>Toestemming &amp; meer</title><FORM id="kt-consent" method=POST action='/oauth/consent?a=1&amp;b=2'>
            <input type="hidden" name="csrf" value="x&quot;y"><input type=checkbox name=remember>
            <select name="loa"><option value="low">l</option><option value="high" selected>h</option></select>
            <button type="submit" name="decision" value="approve">Ja</button><input type="submit" name="decision" value="deny">
        </form><form action="https://tvs/sso" method="post"><input type="hidden" name="SAMLRequest" value="abc"></form>"#;
        let f = forms(html);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].id.as_deref(), Some("kt-consent"));
        assert_eq!(f[0].action, "/oauth/consent?a=1&b=2");
        assert_eq!(f[0].method, "post");
        assert_eq!(
            f[0].fields,
            vec![
                ("csrf".into(), "x\"y".into()),
                ("loa".into(), "high".into())
            ]
        );
        assert_eq!(f[0].buttons.len(), 2);
        assert!(f[1].is_saml_autopost());
        assert!(
            f[0].matches("#kt-consent")
                && f[0].matches("[action*=consent]")
                && !f[1].matches("#kt-consent")
        );
        assert_eq!(title(html).as_deref(), Some("Toestemming & meer"));
        let sub = f[0].submission(&[("loa", "low".into())], Some("decision=approve"));
        assert_eq!(
            sub.last().unwrap(),
            &("decision".to_string(), "approve".to_string())
        );
        assert_eq!(sub[1].1, "low");
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_in_comments_scripts_textareas_and_templates_are_not_forms() {
        let html = r#"<!DOCTYPE html><html><head>
            <!-- <title>Nep</title> -->
            <title>
              Toestemming   geven
            </title>
            <script>var old = '<form id="kt-consent" action="/in-script">';</script>
            </head><body>
            <!-- <form id="kt-consent" action="/in-comment"><input name="x" value="1"></form> -->
            <template><form id="kt-consent" action="/in-template"></form></template>
            <form id="kt-consent" method="post" action="/oauth/consent">
              <textarea name="note"><form id="kt-consent" action="/in-textarea"></textarea>
              <button name="decision" value="approve">Ja</button>
            </form>
            <script>document.write('<form id="kt-consent" action="/written">')</script>
            </body></html>"#;
        let f = forms(html);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].action, "/oauth/consent");
        assert!(f[0].matches("#kt-consent"));
        // Markup inside a textarea is its text, entities and all.
        assert_eq!(
            f[0].fields,
            pairs(&[("note", r#"<form id="kt-consent" action="/in-textarea">"#)])
        );
        assert_eq!(title(html).as_deref(), Some("Toestemming geven"));
    }

    #[test]
    fn character_references_are_decoded_exactly() {
        let html = "<form id=\"f&amp;g\" action=\"/acs?a=1&amp;b=&#x2F;2\" method=post>\
            <input type=hidden name=SAMLResponse value=\"PHNhbWxw&#43;OlJl&#x2F;c3Bv&plus;bnNl&#61;&#61;\">\
            <input type=hidden name=quote value='say &quot;ja&quot; &amp; &lt;nee&gt;'>\
            <input type=hidden name=named value=\"caf&eacute; &euro;&nbsp;5\">\
            <input type=hidden name=&#x6E;&#97;me value=decoded-name>\
            </form>";
        let f = forms(html);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id.as_deref(), Some("f&g"));
        assert_eq!(f[0].action, "/acs?a=1&b=/2");
        assert_eq!(
            f[0].fields,
            pairs(&[
                ("SAMLResponse", "PHNhbWxw+OlJl/c3Bv+bnNl=="),
                ("quote", "say \"ja\" & <nee>"),
                ("named", "café €\u{a0}5"),
                ("name", "decoded-name"),
            ])
        );
        assert!(f[0].matches("[action$=\"b=/2\"]"));
    }

    #[test]
    fn a_greater_than_sign_inside_an_attribute_value_does_not_end_the_tag() {
        let html = r#"<form id="f" data-hint='a > b' action="/consent?next=a>b" method="post">
            <input type="hidden" name="expr" value="1 > 0">
            <input type="hidden" title=">" name="after" value="x">
            <button type="submit" name="decision" value="a>b">Ja</button>
        </form>"#;
        let f = forms(html);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].action, "/consent?next=a>b");
        assert_eq!(f[0].method, "post");
        assert_eq!(f[0].fields, pairs(&[("expr", "1 > 0"), ("after", "x")]));
        assert_eq!(f[0].buttons, pairs(&[("decision", "a>b")]));
    }

    #[test]
    fn the_selector_picks_the_right_one_of_several_forms() {
        let html = r#"<html><body>
            <header><form id="search" action="/zoeken"><input name="q" value=""></form></header>
            <main>
              <form id="kt-consent" class="consent" method="post" action="/oauth/consent">
                <input type="hidden" name="csrf" value="c1">
                <button name="decision" value="approve">Ja</button>
              </form>
              <form id="1-cancel" method="post" action="/oauth/consent/cancel">
                <input type="hidden" name="csrf" value="c2">
              </form>
            </main></body></html>"#;
        let f = forms(html);
        assert_eq!(f.len(), 3);
        let picked = |selector: &str| -> Vec<String> {
            f.iter()
                .filter(|form| form.matches(selector))
                .map(|form| form.action.clone())
                .collect()
        };
        assert_eq!(picked("#kt-consent"), ["/oauth/consent"]);
        assert_eq!(
            picked("[action*=consent]"),
            ["/oauth/consent", "/oauth/consent/cancel"]
        );
        assert_eq!(picked("[action$=cancel]"), ["/oauth/consent/cancel"]);
        // The older shapes that are not CSS still work.
        assert_eq!(picked("[action$=/consent]"), ["/oauth/consent"]);
        assert_eq!(picked("[action*=\"/oauth/\"]").len(), 2);
        assert_eq!(picked("#1-cancel"), ["/oauth/consent/cancel"]);
        // Any CSS, matched in the page's context.
        assert_eq!(picked("main form.consent"), ["/oauth/consent"]);
        assert_eq!(
            picked("main > form:nth-of-type(2)"),
            ["/oauth/consent/cancel"]
        );
        assert_eq!(picked("header form, #nothing"), ["/zoeken"]);
        assert_eq!(
            picked("form[method=post]:not(.consent)"),
            ["/oauth/consent/cancel"]
        );
        assert!(picked("div form").is_empty());
        assert_eq!(f[1].fields, pairs(&[("csrf", "c1")]));
    }

    #[test]
    fn an_auto_submitting_saml_post_form_is_recognised_with_exact_values() {
        let request = "PHNhbWxwOkF1dGhuUmVxdWVzdCBJRD0iXzEiLz4+Pz8/Zm9vL2Jhcg==";
        let encoded = request.replace('+', "&#43;").replace('/', "&#x2F;");
        let html = format!(
            r#"<!DOCTYPE html><html><head><title>Doorsturen</title></head>
            <body onload="document.forms[0].submit()">
            <noscript><p>JavaScript staat uit. Klik op Doorgaan.</p></noscript>
            <form method="POST" action="https://tvs.koppeltest.test/sso?x=1&amp;y=2">
              <input type="hidden" name="SAMLRequest" value="{encoded}"/>
              <input type="hidden" name="RelayState" value="rs&amp;1&quot;"/>
              <noscript><input type="submit" name="doorgaan" value="Doorgaan"/></noscript>
            </form>
            <script>window.addEventListener('load', function () {{ document.forms[0].submit(); }});</script>
            </body></html>"#
        );
        let f = forms(&html);
        assert_eq!(f.len(), 1);
        assert!(f[0].is_saml_autopost());
        assert_eq!(f[0].method, "post");
        assert_eq!(f[0].action, "https://tvs.koppeltest.test/sso?x=1&y=2");
        assert_eq!(
            f[0].submission(&[], None),
            pairs(&[("SAMLRequest", request), ("RelayState", "rs&1\"")])
        );
        // No scripts run here, so `<noscript>` content is markup, as in a browser without them.
        assert_eq!(f[0].buttons, pairs(&[("doorgaan", "Doorgaan")]));
        // A consent form is not one, even with a field that merely mentions SAML.
        let consent =
            forms(r#"<form id="kt-consent"><input name="saml_hint" value="SAMLRequest"></form>"#);
        assert!(!consent[0].is_saml_autopost());
    }

    #[test]
    fn controls_follow_the_form_submission_rules() {
        let html = r#"<form id="main" action="/submit" method="post">
            <input name="text" value="t">
            <input name="off" value="x" disabled>
            <input type="button" name="js" value="b"><input type="reset" name="r" value="r">
            <input type="checkbox" name="box" checked><input type="checkbox" name="unticked" value="u">
            <input type="radio" name="choice" value="a"><input type="radio" name="choice" value="b" checked>
            <fieldset disabled><legend><input name="in-legend" value="l"></legend><input name="in-fieldset" value="f"></fieldset>
            <select name="first"><option disabled>skip</option><option> Eerste   keus </option><option value="2">twee</option></select>
            <select name="many" multiple><option value="a" selected>a</option><option value="b">b</option><option value="c" selected>c</option></select>
            <select name="listbox" size="3"><option value="x">x</option></select>
            <textarea name="note">
regel 1
regel 2</textarea>
            <input type="hidden" name="elsewhere" value="e" form="other">
            <button name="go" value="1">Ga</button>
            <button type="button" name="not-a-submit" value="0">Niets</button>
        </form>
        <form id="other" action="/other"></form>
        <input type="hidden" name="outside" value="o" form="main">
        <input type="hidden" name="orphan" value="n">"#;
        let f = forms(html);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].fields,
            pairs(&[
                ("text", "t"),
                ("box", "on"),
                ("choice", "b"),
                ("in-legend", "l"),
                ("first", "Eerste keus"),
                ("many", "a"),
                ("many", "c"),
                ("note", "regel 1\nregel 2"),
                ("outside", "o"),
            ])
        );
        assert_eq!(f[0].buttons, pairs(&[("go", "1")]));
        assert_eq!(f[1].fields, pairs(&[("elsewhere", "e")]));
    }

    #[test]
    fn invalid_selectors_match_nothing_and_never_panic() {
        let f = forms(r#"<form id="kt-consent" action="/oauth/consent"></form>"#);
        for bad in [
            "",
            "   ",
            "#",
            "[action*=",
            "form >",
            "form:hover",
            "p::before",
            "!!",
            "[]",
        ] {
            assert!(!f[0].matches(bad), "{bad:?} matched");
            let e = check_selector(bad).unwrap_err();
            assert_eq!(e.selector, bad);
            assert!(e.to_string().starts_with("parse form selector"), "{e}");
        }
        for good in [
            "#kt-consent",
            "[action*=consent]",
            "[action$=/consent]",
            "body > form",
        ] {
            assert!(check_selector(good).is_ok(), "{good}");
            assert!(f[0].matches(good), "{good}");
        }
        let defaults = Selectors::default();
        for s in [&defaults.landing, &defaults.consent, &defaults.tvs_login] {
            assert!(check_selector(&s.form).is_ok(), "{}", s.form);
        }
    }

    #[test]
    fn a_form_made_by_hand_matches_its_own_attributes() {
        let form = Form {
            id: Some("kt-\"landing\"".into()),
            action: "/oauth/login?a=1&b=2".into(),
            method: "post".into(),
            ..Form::default()
        };
        assert!(form.matches("#kt-\\\"landing\\\""));
        assert!(form.matches("[action$=\"a=1&b=2\"]"));
        assert!(form.matches("[method=post]"));
        assert!(!form.matches("#kt-consent"));
    }
}
