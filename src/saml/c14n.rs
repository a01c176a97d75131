//! Exclusive XML canonicalization without comments (`http://www.w3.org/2001/10/xml-exc-c14n#`).
//!
//! Enough of the W3C algorithm for SAML: namespace declarations are rendered where they are
//! visibly utilized and not already in scope of the output, attributes are sorted by namespace
//! URI then local name, empty elements become start/end pairs, and text and attribute values are
//! escaped as the spec says. Comments are dropped; processing instructions inside a signed
//! element are rendered. `InclusiveNamespaces PrefixList` is not supported: a reference that asks
//! for it is refused by [`super::dsig`], so a signature we cannot canonicalize fails closed.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Canonical form of the subtree at `node`, leaving out the subtree `exclude` (the enveloped
/// signature).
pub fn exclusive(node: Node<'_, '_>, exclude: Option<NodeId>) -> String {
    let mut out = String::new();
    element(node, &BTreeMap::new(), exclude, &mut out);
    out
}

/// The qualified name of an element or attribute as written in the source.
fn element_qname<'a>(node: Node<'a, '_>) -> &'a str {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

fn element(
    node: Node<'_, '_>,
    rendered: &BTreeMap<String, String>,
    exclude: Option<NodeId>,
    out: &mut String,
) {
    if Some(node.id()) == exclude {
        return;
    }
    let qname = element_qname(node);
    let text = node.document().input_text();
    let mut needed: BTreeMap<String, String> = BTreeMap::new();
    needed.insert(
        prefix_of(qname).to_string(),
        node.tag_name().namespace().unwrap_or("").to_string(),
    );
    let mut attrs: Vec<(&str, &str, &str, String)> = Vec::new();
    for attr in node.attributes() {
        let aq = &text[attr.range_qname()];
        let ns = attr.namespace().unwrap_or("");
        if !ns.is_empty() && ns != XML_NS {
            needed.insert(prefix_of(aq).to_string(), ns.to_string());
        }
        attrs.push((ns, attr.name(), aq, escape_attr(attr.value())));
    }
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut scope = rendered.clone();
    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in &needed {
        let already = rendered.get(prefix).map(String::as_str);
        // An empty default namespace needs declaring only to undo a rendered non-empty one.
        let skip = if prefix.is_empty() && uri.is_empty() {
            already.is_none_or(str::is_empty)
        } else {
            already == Some(uri.as_str())
        };
        if skip {
            continue;
        }
        if prefix.is_empty() {
            out.push_str(&format!(" xmlns=\"{}\"", escape_attr(uri)));
        } else {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape_attr(uri)));
        }
        scope.insert(prefix.clone(), uri.clone());
    }
    for (_, _, aq, value) in &attrs {
        out.push_str(&format!(" {aq}=\"{value}\""));
    }
    out.push('>');
    for child in node.children() {
        if child.is_element() {
            element(child, &scope, exclude, out);
        } else if child.is_text() {
            out.push_str(&escape_text(child.text().unwrap_or("")));
        } else if let Some(pi) = child.pi() {
            out.push_str("<?");
            out.push_str(pi.target);
            if let Some(v) = pi.value {
                out.push(' ');
                out.push_str(v);
            }
            out.push_str("?>");
        }
    }
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#xD;")
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('\t', "&#x9;")
        .replace('\n', "&#xA;")
        .replace('\r', "&#xD;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, path: &[&str]) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let mut node = doc.root_element();
        for name in path {
            node = node
                .children()
                .find(|c| c.tag_name().name() == *name)
                .unwrap();
        }
        exclusive(node, None)
    }

    #[test]
    fn renders_only_visibly_utilized_namespaces_on_the_apex() {
        let xml = r#"<a:Root xmlns:a="urn:a" xmlns:b="urn:b" xmlns:unused="urn:u"><b:Child z="2" a:y="1" x="&quot;3"/></a:Root>"#;
        assert_eq!(
            c14n(xml, &["Child"]),
            r#"<b:Child xmlns:a="urn:a" xmlns:b="urn:b" x="&quot;3" z="2" a:y="1"></b:Child>"#
        );
        assert_eq!(
            c14n(xml, &[]),
            r#"<a:Root xmlns:a="urn:a"><b:Child xmlns:b="urn:b" x="&quot;3" z="2" a:y="1"></b:Child></a:Root>"#
        );
    }

    #[test]
    fn escapes_text_and_drops_comments() {
        let xml = "<r><!-- c -->a &amp; b &lt; c > d\r</r>";
        assert_eq!(c14n(xml, &[]), "<r>a &amp; b &lt; c &gt; d\n</r>");
    }

    #[test]
    fn default_namespace_is_undone_only_when_rendered() {
        let xml = r#"<r xmlns="urn:d"><s xmlns=""><t/></s></r>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<r xmlns="urn:d"><s xmlns=""><t></t></s></r>"#
        );
        assert_eq!(c14n(xml, &["s"]), "<s><t></t></s>");
    }
}
