//! The MedMij lists the mock PGO and the simulated DVA read: Zorgaanbiederslijst (release 2 and
//! 3), OAuth client list, Whitelist (both the old text shape and the current `Hostname` shape).
//!
//! Parsing is structural validation in the spirit of the XSDs (required elements, URI rules,
//! uniqueness); it is not a full XSD validator. Resolution follows the algorithm in the brief:
//! provider name → gegevensdienst → endpoints, and every host checked against the Whitelist by
//! the caller before it connects.

use std::collections::BTreeSet;

use roxmltree::{Document, Node};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("parse {list}: {message}")]
    Parse { list: &'static str, message: String },
    #[error("{list}: {message}")]
    Invalid { list: &'static str, message: String },
    #[error("zorgaanbieder {0:?} is not on the ZAL")]
    UnknownProvider(String),
    #[error("zorgaanbieder {provider:?} offers no gegevensdienst {service}")]
    UnknownService { provider: String, service: String },
    #[error("host {0:?} is not on the Whitelist")]
    NotWhitelisted(String),
}

fn kids<'a, 'i>(node: Node<'a, 'i>, local: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == local)
}

fn kid<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == local)
}

fn text(node: Node<'_, '_>, local: &str) -> String {
    kid(node, local)
        .and_then(|n| n.text())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn open<'i>(xml: &'i str, list: &'static str, root: &str) -> Result<Document<'i>, ListError> {
    let doc = Document::parse(xml).map_err(|e| ListError::Parse {
        list,
        message: e.to_string(),
    })?;
    let r = doc.root_element();
    if r.tag_name().name() != root {
        return Err(ListError::Invalid {
            list,
            message: format!("root element is {}, expected {root}", r.tag_name().name()),
        });
    }
    for required in ["Tijdstempel", "Volgnummer"] {
        if text(r, required).is_empty() {
            return Err(ListError::Invalid {
                list,
                message: format!("{required} is missing"),
            });
        }
    }
    Ok(doc)
}

/// One gegevensdienst of one zorgaanbieder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gegevensdienst {
    pub id: String,
    pub interfaceversie: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// (Systeemrolcode, ResourceEndpointuri)
    pub resource_endpoints: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zorgaanbieder {
    pub naam: String,
    pub diensten: Vec<Gegevensdienst>,
}

/// A parsed Zorgaanbiederslijst.
#[derive(Debug, Clone)]
pub struct Zal {
    pub release: u8,
    pub volgnummer: u64,
    pub zorgaanbieders: Vec<Zorgaanbieder>,
    /// Non-fatal remarks (naming policy) for the report.
    pub warnings: Vec<String>,
}

/// The endpoints a PGO needs for one provider and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub resource: String,
}

fn check_uri(uri: &str, front: bool, what: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("{what} {uri:?} is not a URI: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("{what} {uri:?} is not https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{what} {uri:?} has a query or fragment"));
    }
    if front && url.port().is_some() {
        return Err(format!(
            "{what} {uri:?} is front channel and may not name a port"
        ));
    }
    Ok(())
}

pub fn parse_zal(xml: &str) -> Result<Zal, ListError> {
    const L: &str = "Zorgaanbiederslijst";
    let doc = open(xml, L, "Zorgaanbiederslijst")?;
    let root = doc.root_element();
    let ns = root.tag_name().namespace().unwrap_or("");
    let release = if ns.contains("release3") {
        3
    } else if ns.contains("release2") {
        2
    } else {
        return Err(ListError::Invalid {
            list: L,
            message: format!("unknown namespace {ns:?}"),
        });
    };
    let invalid = |message: String| ListError::Invalid { list: L, message };
    let mut zal = Zal {
        release,
        volgnummer: text(root, "Volgnummer")
            .parse()
            .map_err(|_| invalid("Volgnummer is not a number".into()))?,
        zorgaanbieders: Vec::new(),
        warnings: Vec::new(),
    };
    let mut names = BTreeSet::new();
    for za in kid(root, "Zorgaanbieders")
        .into_iter()
        .flat_map(|z| kids(z, "Zorgaanbieder"))
    {
        let naam = text(za, "Zorgaanbiedernaam");
        if !naam.ends_with("@medmij") || naam.len() <= "@medmij".len() {
            return Err(invalid(format!(
                "Zorgaanbiedernaam {naam:?} does not end in @medmij"
            )));
        }
        if !names.insert(naam.clone()) {
            return Err(invalid(format!("Zorgaanbiedernaam {naam:?} is not unique")));
        }
        if let Some(w) = naming_policy_warning(&naam, release) {
            zal.warnings.push(w);
        }
        // Release 3 nests services in Interfaceversies/Interfaceversie; release 2 does not.
        let mut groups: Vec<(Option<String>, Node)> = Vec::new();
        if release == 3 {
            for iv in kid(za, "Interfaceversies")
                .into_iter()
                .flat_map(|i| kids(i, "Interfaceversie"))
            {
                if let Some(g) = kid(iv, "Gegevensdiensten") {
                    groups.push((Some(text(iv, "InterfaceversieId")), g));
                }
            }
        } else if let Some(g) = kid(za, "Gegevensdiensten") {
            groups.push((None, g));
        }
        let mut diensten = Vec::new();
        for (iv, group) in groups {
            for gd in kids(group, "Gegevensdienst") {
                let auth = kid(gd, "AuthorizationEndpoint")
                    .map(|n| text(n, "AuthorizationEndpointuri"))
                    .unwrap_or_default();
                let token = kid(gd, "TokenEndpoint")
                    .map(|n| text(n, "TokenEndpointuri"))
                    .unwrap_or_default();
                check_uri(&auth, true, "AuthorizationEndpointuri").map_err(&invalid)?;
                check_uri(&token, false, "TokenEndpointuri").map_err(&invalid)?;
                let mut resources = Vec::new();
                for rol in kid(gd, "Systeemrollen")
                    .into_iter()
                    .flat_map(|s| kids(s, "Systeemrol"))
                {
                    let uri = kid(rol, "ResourceEndpoint")
                        .map(|n| text(n, "ResourceEndpointuri"))
                        .unwrap_or_default();
                    check_uri(&uri, false, "ResourceEndpointuri").map_err(&invalid)?;
                    resources.push((text(rol, "Systeemrolcode"), uri));
                }
                diensten.push(Gegevensdienst {
                    id: text(gd, "GegevensdienstId"),
                    interfaceversie: iv.clone(),
                    authorization_endpoint: auth,
                    token_endpoint: token,
                    resource_endpoints: resources,
                });
            }
        }
        zal.zorgaanbieders.push(Zorgaanbieder { naam, diensten });
    }
    Ok(zal)
}

/// The release-2 XSD's name form: `[a-z]+` before `@medmij`.
fn lower_letters(local: &str) -> bool {
    !local.is_empty() && local.chars().all(|c| c.is_ascii_lowercase())
}

/// The GP naming policy's form `naam.type.woonplaats`, type `huisartspraktijk` or
/// `apothekhoudendehuisartspraktijk`, lower case, digits and hyphens.
fn gp_policy(local: &str) -> bool {
    let parts: Vec<&str> = local.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && matches!(
            parts[1],
            "huisartspraktijk" | "apothekhoudendehuisartspraktijk"
        )
}

/// The GP naming policy proposes `naam.type.woonplaats@medmij`; release-2 XSDs allow only
/// `[a-z]+@medmij`. Neither shape is an error here; anything else gets a warning.
fn naming_policy_warning(naam: &str, release: u8) -> Option<String> {
    let local = naam.trim_end_matches("@medmij");
    if lower_letters(local) || gp_policy(local) {
        if release == 2 && !lower_letters(local) {
            return Some(format!("{naam}: release-2 XSD allows only [a-z]+@medmij"));
        }
        return None;
    }
    Some(format!(
        "{naam}: follows neither [a-z]+@medmij nor the GP naming policy naam.type.woonplaats@medmij"
    ))
}

/// How a zorgaanbieder name fares against the naming form, for `preflight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// Follows a form; the text says which.
    Follows(&'static str),
    /// Allowed on the list, but follows neither form: the brief says warn, not fail.
    Warning(String),
    /// Not a name the list allows: no `…@medmij`, or a release-2 list and not `[a-z]+@medmij`
    /// (its XSD's pattern).
    Invalid(String),
}

/// Judges `naam` as a name on a ZAL of `release`.
pub fn judge_name(naam: &str, release: u8) -> Naming {
    let Some(local) = naam.strip_suffix("@medmij").filter(|l| !l.is_empty()) else {
        return Naming::Invalid(format!("{naam:?} does not end in @medmij"));
    };
    match (lower_letters(local), gp_policy(local), release) {
        (true, _, _) => Naming::Follows("[a-z]+@medmij"),
        (false, _, 2) => Naming::Invalid(format!(
            "{naam:?} on a release-2 ZAL: its XSD allows only [a-z]+@medmij"
        )),
        (false, true, _) => Naming::Follows("naam.type.woonplaats@medmij (GP naming policy)"),
        (false, false, _) => Naming::Warning(format!(
            "{naam:?} follows neither [a-z]+@medmij nor the GP naming policy \
             naam.type.woonplaats@medmij (lower case, type huisartspraktijk or \
             apothekhoudendehuisartspraktijk)"
        )),
    }
}

impl Zal {
    /// Resolves a provider and gegevensdienst to endpoints. The resource endpoint is the first
    /// Systeemrol's; a base already ending in `/fhir` is kept as it is (never `/fhir/fhir`).
    pub fn resolve(&self, naam: &str, dienst: &str) -> Result<Endpoints, ListError> {
        let za = self
            .zorgaanbieders
            .iter()
            .find(|z| z.naam == naam)
            .ok_or_else(|| ListError::UnknownProvider(naam.to_string()))?;
        let gd = za.diensten.iter().find(|d| d.id == dienst).ok_or_else(|| {
            ListError::UnknownService {
                provider: naam.to_string(),
                service: dienst.to_string(),
            }
        })?;
        let resource = gd
            .resource_endpoints
            .first()
            .map(|(_, u)| u.trim_end_matches('/').to_string())
            .ok_or_else(|| ListError::Invalid {
                list: "Zorgaanbiederslijst",
                message: format!("{naam} service {dienst} has no ResourceEndpoint"),
            })?;
        Ok(Endpoints {
            authorization: gd.authorization_endpoint.clone(),
            token: gd.token_endpoint.clone(),
            resource,
        })
    }
}

/// One entry of the OAuth client list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub hostname: String,
    pub organisatienaam: String,
}

#[derive(Debug, Clone, Default)]
pub struct Ocl {
    pub clients: Vec<OAuthClient>,
}

impl Ocl {
    pub fn find(&self, hostname: &str) -> Option<&OAuthClient> {
        self.clients.iter().find(|c| c.hostname == hostname)
    }
}

pub fn parse_ocl(xml: &str) -> Result<Ocl, ListError> {
    const L: &str = "OAuthclientlist";
    let doc = open(xml, L, "OAuthclientlist")?;
    let mut ocl = Ocl::default();
    for c in kid(doc.root_element(), "OAuthclients")
        .into_iter()
        .flat_map(|c| kids(c, "OAuthclient"))
    {
        let client = OAuthClient {
            hostname: text(c, "Hostname"),
            organisatienaam: text(c, "OAuthclientOrganisatienaam"),
        };
        if client.hostname.is_empty() || client.organisatienaam.is_empty() {
            return Err(ListError::Invalid {
                list: L,
                message: "OAuthclient without Hostname or OAuthclientOrganisatienaam".into(),
            });
        }
        if ocl.find(&client.hostname).is_some() {
            return Err(ListError::Invalid {
                list: L,
                message: format!("Hostname {:?} is not unique", client.hostname),
            });
        }
        ocl.clients.push(client);
    }
    Ok(ocl)
}

/// Which of the two published Whitelist shapes a file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhitelistShape {
    /// `MedMijNode` holds the host name as text (file version 2).
    Text,
    /// `MedMijNode/Hostname` (current).
    Hostname,
}

#[derive(Debug, Clone)]
pub struct Whitelist {
    pub hosts: BTreeSet<String>,
    pub shape: WhitelistShape,
}

impl Whitelist {
    /// Checks the host of `uri` against the list.
    pub fn check(&self, uri: &str) -> Result<(), ListError> {
        let host = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if self.hosts.contains(&host) {
            Ok(())
        } else {
            Err(ListError::NotWhitelisted(host))
        }
    }
}

pub fn parse_whitelist(xml: &str) -> Result<Whitelist, ListError> {
    const L: &str = "Whitelist";
    let doc = open(xml, L, "Whitelist")?;
    let mut hosts = BTreeSet::new();
    let mut shape = WhitelistShape::Hostname;
    for node in kid(doc.root_element(), "MedMijNodes")
        .into_iter()
        .flat_map(|n| kids(n, "MedMijNode"))
    {
        let host = match kid(node, "Hostname") {
            Some(h) => h.text().unwrap_or("").trim().to_string(),
            None => {
                shape = WhitelistShape::Text;
                node.text().unwrap_or("").trim().to_string()
            }
        };
        if host.is_empty() {
            return Err(ListError::Invalid {
                list: L,
                message: "empty MedMijNode".into(),
            });
        }
        if !hosts.insert(host.clone()) {
            return Err(ListError::Invalid {
                list: L,
                message: format!("Hostname {host:?} is not unique"),
            });
        }
    }
    Ok(Whitelist { hosts, shape })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZAL3: &str = include_str!("../fixtures/lists/MedMij_Zorgaanbiederslijst.xml");
    const ZAL2: &str = include_str!("../fixtures/lists/MedMij_Zorgaanbiederslijst_release2.xml");
    const WL_NEW: &str = include_str!("../fixtures/lists/MedMij_Whitelist.xml");
    const WL_OLD: &str = include_str!("../fixtures/lists/MedMij_Whitelist_v2.xml");
    const OCL: &str = include_str!("../fixtures/lists/MedMij_OAuthclientlist.xml");

    #[test]
    fn both_zal_releases_resolve_service_49() {
        let zal3 = parse_zal(ZAL3).unwrap();
        assert_eq!(zal3.release, 3);
        let e = zal3
            .resolve("dewaard.huisartspraktijk.utrecht@medmij", "49")
            .unwrap();
        assert!(
            e.authorization
                .starts_with("https://medmij.conform.dva.koppeltest.test/")
        );
        assert!(
            e.resource.ends_with("/fhir"),
            "base kept as published: {}",
            e.resource
        );
        let zal2 = parse_zal(ZAL2).unwrap();
        assert_eq!(zal2.release, 2);
        assert!(zal2.resolve("hoekstra@medmij", "49").is_ok());
        assert!(matches!(
            zal2.resolve("hoekstra@medmij", "48"),
            Err(ListError::UnknownService { .. })
        ));
        assert!(matches!(
            zal3.resolve("nobody@medmij", "49"),
            Err(ListError::UnknownProvider(_))
        ));
    }

    #[test]
    fn both_whitelist_shapes_parse_to_the_same_hosts() {
        let new = parse_whitelist(WL_NEW).unwrap();
        let old = parse_whitelist(WL_OLD).unwrap();
        assert_eq!(new.shape, WhitelistShape::Hostname);
        assert_eq!(old.shape, WhitelistShape::Text);
        assert_eq!(new.hosts, old.hosts);
        assert!(
            new.check("https://api.conform.dva.koppeltest.test/oauth/token")
                .is_ok()
        );
        assert!(matches!(
            new.check("https://evil.example/"),
            Err(ListError::NotWhitelisted(_))
        ));
    }

    #[test]
    fn ocl_and_list_errors() {
        let ocl = parse_ocl(OCL).unwrap();
        assert!(ocl.find("medmij.pgo-alfa.koppeltest.test").is_some());
        let no_seq = OCL
            .replace("<Volgnummer>", "<X>")
            .replace("</Volgnummer>", "</X>");
        assert!(
            parse_ocl(&no_seq)
                .unwrap_err()
                .to_string()
                .contains("Volgnummer")
        );
        let ported = ZAL3.replacen(
            "https://medmij.conform.dva.koppeltest.test/",
            "https://medmij.conform.dva.koppeltest.test:8443/",
            1,
        );
        assert!(parse_zal(&ported).unwrap_err().to_string().contains("port"));
    }

    #[test]
    fn naming_policy_is_a_warning_not_an_error() {
        assert_eq!(
            naming_policy_warning("dewaard.huisartspraktijk.utrecht@medmij", 3),
            None
        );
        assert_eq!(naming_policy_warning("hoekstra@medmij", 2), None);
        assert!(naming_policy_warning("De_Waard@medmij", 3).is_some());
    }

    #[test]
    fn names_are_judged_against_the_release_and_the_policy() {
        assert!(matches!(
            judge_name("dewaard.huisartspraktijk.utrecht@medmij", 3),
            Naming::Follows(f) if f.contains("GP naming policy")
        ));
        assert_eq!(
            judge_name("hoekstra@medmij", 2),
            Naming::Follows("[a-z]+@medmij")
        );
        assert!(matches!(
            judge_name("dewaard.huisartspraktijk.utrecht@medmij", 2),
            Naming::Invalid(m) if m.contains("release-2")
        ));
        assert!(matches!(
            judge_name("De_Waard@medmij", 3),
            Naming::Warning(_)
        ));
        assert!(matches!(
            judge_name("dewaard@example", 3),
            Naming::Invalid(_)
        ));
        assert!(matches!(judge_name("@medmij", 3), Naming::Invalid(_)));
    }
}
