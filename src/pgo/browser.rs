//! A small, honest user agent: HTML forms found and submitted, redirects followed one hop at a
//! time, every hop recorded. No JavaScript: auto-submitting SAML forms are recognised by their
//! `SAMLRequest`/`SAMLResponse`/`SAMLart` fields, the other forms by configurable selectors so a
//! real DVA's landing and consent pages can be driven too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Picks a form and the button to press in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormSelector {
    /// `#id`, `[action*=text]` (action contains) or `[action$=text]` (action ends with).
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
}

impl Form {
    pub fn matches(&self, selector: &str) -> bool {
        if let Some(id) = selector.strip_prefix('#') {
            return self.id.as_deref() == Some(id);
        }
        if let Some(inner) = selector
            .strip_prefix("[action*=")
            .and_then(|s| s.strip_suffix(']'))
        {
            return self.action.contains(inner.trim_matches('"'));
        }
        if let Some(inner) = selector
            .strip_prefix("[action$=")
            .and_then(|s| s.strip_suffix(']'))
        {
            return self.action.ends_with(inner.trim_matches('"'));
        }
        false
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

/// The page title, for evidence.
pub fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title>")? + 7;
    let end = start + lower[start..].find("</title>")?;
    Some(decode_entities(html[start..end].trim()))
}

/// Every form in `html`. Tolerant of attribute quoting and case; not a full HTML parser.
pub fn forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("<form") {
        let start = from + pos;
        let Some(tag_end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let attrs = attributes(&html[start + 5..tag_end]);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |e| tag_end + e);
        let body = &html[tag_end + 1..end];
        let body_lower = &lower[tag_end + 1..end];
        let mut form = Form {
            id: attr(&attrs, "id"),
            action: attr(&attrs, "action").unwrap_or_default(),
            method: attr(&attrs, "method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            ..Form::default()
        };
        collect_controls(body, body_lower, &mut form);
        out.push(form);
        from = end.max(start + 5);
    }
    out
}

fn collect_controls(body: &str, lower: &str, form: &mut Form) {
    let mut i = 0;
    while let Some(pos) = lower[i..].find('<') {
        let start = i + pos;
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let tag = &lower[start + 1..end];
        let name_end = tag
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tag.len());
        let attrs = attributes(&body[start + 1 + name_end..end]);
        match &tag[..name_end] {
            "input" => {
                let kind = attr(&attrs, "type")
                    .unwrap_or_else(|| "text".into())
                    .to_ascii_lowercase();
                if let Some(name) = attr(&attrs, "name") {
                    let value = attr(&attrs, "value").unwrap_or_default();
                    match kind.as_str() {
                        "submit" => form.buttons.push((name, value)),
                        "checkbox" | "radio" if attr(&attrs, "checked").is_none() => {}
                        _ => form.fields.push((name, value)),
                    }
                }
            }
            "button" => {
                let kind = attr(&attrs, "type").unwrap_or_else(|| "submit".into());
                if kind.eq_ignore_ascii_case("submit") {
                    if let Some(name) = attr(&attrs, "name") {
                        form.buttons
                            .push((name, attr(&attrs, "value").unwrap_or_default()));
                    }
                }
            }
            "select" => {
                if let Some(name) = attr(&attrs, "name") {
                    let close = lower[end..]
                        .find("</select")
                        .map_or(lower.len(), |c| end + c);
                    let options = &body[end..close];
                    let opts_lower = &lower[end..close];
                    let mut chosen: Option<String> = None;
                    let mut first: Option<String> = None;
                    let mut j = 0;
                    while let Some(p) = opts_lower[j..].find("<option") {
                        let s = j + p;
                        let e = opts_lower[s..]
                            .find('>')
                            .map_or(opts_lower.len(), |x| s + x);
                        let oa = attributes(&options[s + 7..e]);
                        let v = attr(&oa, "value").unwrap_or_default();
                        if first.is_none() {
                            first = Some(v.clone());
                        }
                        if attr(&oa, "selected").is_some() {
                            chosen = Some(v);
                        }
                        j = e;
                    }
                    form.fields
                        .push((name, chosen.or(first).unwrap_or_default()));
                }
            }
            _ => {}
        }
        i = end;
    }
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Parses `name="v" other='w' bare=x flag` into pairs; names are lowercased, values decoded.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if ns == i {
            break;
        }
        let name = s[ns..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = s[vs..].find(q as char).map_or(s.len(), |e| vs + e);
                value = decode_entities(&s[vs..ve]);
                i = (ve + 1).min(b.len());
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&s[vs..i]);
            }
        }
        out.push((name, value));
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
