//! Embedding routes and deployments. A vector from one embedding model is meaningless next to
//! a vector from another (another family, or another dimension), so an embeddings route only
//! chains deployments of one vector space: fallback can never hand the caller a vector from a
//! different space. Chat routes and embeddings routes never share a deployment, and task
//! classification (a chat feature) never picks an embeddings route.

use super::check::Errors;
use super::raw::RawEmbedding;
use super::types::{Deployment, EmbeddingSpace, Provider, ProviderKind, Route, RouteKind, Tasks};
use std::collections::BTreeMap;

/// Longest vector a deployment may declare (OpenAI's largest is 3072, Gemini's 3072).
pub const MAX_DIMENSIONS: u32 = 65_536;

/// `deployments.<name>.embedding`.
pub(super) fn space(
    path: &str,
    raw: Option<&RawEmbedding>,
    errs: &mut Errors,
) -> Option<EmbeddingSpace> {
    let raw = raw?;
    if raw.family.trim().is_empty() {
        errs.push(&format!("{path}.family"), "must not be empty");
    }
    if raw.dimensions == 0 || raw.dimensions > MAX_DIMENSIONS {
        errs.push(
            &format!("{path}.dimensions"),
            format!("must be between 1 and {MAX_DIMENSIONS}"),
        );
    }
    Some(EmbeddingSpace {
        family: raw.family.clone(),
        dimensions: raw.dimensions,
    })
}

/// `routes.<name>.kind`.
pub(super) fn route_kind(path: &str, raw: Option<&str>, errs: &mut Errors) -> RouteKind {
    match raw {
        None | Some("chat") => RouteKind::Chat,
        Some("embeddings") => RouteKind::Embeddings,
        Some(other) => {
            errs.push(
                &format!("{path}.kind"),
                format!("{other:?} is not one of \"chat\", \"embeddings\""),
            );
            RouteKind::Chat
        }
    }
}

/// Every route's chain against its kind: an embeddings route has embedding deployments of
/// one space on providers that can embed; a chat route has no embedding deployment.
pub(super) fn check_routes(
    routes: &BTreeMap<String, Route>,
    deployments: &[Deployment],
    providers: &[Provider],
    errs: &mut Errors,
) {
    for (name, route) in routes {
        let mut first: Option<(&str, &EmbeddingSpace)> = None;
        for (i, step) in route.chain.steps().iter().enumerate() {
            let Some(dep) = deployments.get(step.deployment) else {
                continue;
            };
            let path = format!("routes.{name}.chain[{i}]");
            match (route.kind, &dep.embedding) {
                (RouteKind::Chat, Some(_)) => errs.push(
                    &path,
                    format!(
                        "deployment {:?} is an embedding model (it declares `embedding`); \
                         list it in a route with \"kind\": \"embeddings\"",
                        dep.name
                    ),
                ),
                (RouteKind::Chat, None) => {}
                (RouteKind::Embeddings, None) => errs.push(
                    &path,
                    format!(
                        "deployment {:?} declares no `embedding` ({{\"family\", \"dimensions\"}}), \
                         which an embeddings route needs",
                        dep.name
                    ),
                ),
                (RouteKind::Embeddings, Some(space)) => {
                    let kind = providers.get(dep.provider).map(|p| &p.kind);
                    if let Some(ProviderKind::Anthropic(_)) = kind {
                        errs.push(
                            &path,
                            format!(
                                "deployment {:?} is on an anthropic provider, which has no \
                                 embeddings API",
                                dep.name
                            ),
                        );
                    }
                    match first {
                        None => first = Some((&dep.name, space)),
                        Some((other, s)) if s != space => errs.push(
                            &path,
                            format!(
                                "deployment {:?} embeds into {}/{} but {other:?} into {}/{}: \
                                 an embeddings route's deployments must share one family and \
                                 dimension",
                                dep.name, space.family, space.dimensions, s.family, s.dimensions
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

/// Task routes are chat routes: classification never sends a chat request to embeddings.
pub(super) fn check_tasks(tasks: &Tasks, routes: &BTreeMap<String, Route>, errs: &mut Errors) {
    for (task, route) in &tasks.routes {
        if routes
            .get(route)
            .is_some_and(|r| r.kind == RouteKind::Embeddings)
        {
            errs.push(
                &format!("tasks.routes.{task}"),
                format!("route {route:?} is an embeddings route; tasks pick chat routes"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_table, RouteKind};

    fn table(deployments: &str, routes: &str) -> Result<crate::config::RoutingTable, Vec<String>> {
        parse_table(&format!(
            r#"{{"version":1,
                "providers":{{"oa":{{"kind":"openai","base_url":"http://x/v1"}},
                             "an":{{"kind":"anthropic"}},
                             "m":{{"kind":"mock"}}}},
                "deployments":{{
                  "chat":{{"provider":"m","model":"c","context_window":8000}},
                  {deployments}}},
                "routes":{{"c":{{"chain":["chat"]}}, {routes}}}}}"#
        ))
    }

    const SMALL_A: &str = r#""a":{"provider":"oa","model":"text-embedding-3-small","context_window":8191,
        "embedding":{"family":"text-embedding-3","dimensions":1536}}"#;
    const SMALL_B: &str = r#""b":{"provider":"m","model":"mock-embed","context_window":8191,
        "embedding":{"family":"text-embedding-3","dimensions":1536}}"#;

    #[test]
    fn an_embeddings_route_of_one_space_is_accepted() {
        let t = table(
            &format!("{SMALL_A},{SMALL_B}"),
            r#""e":{"kind":"embeddings","chain":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(t.route("e").unwrap().kind, RouteKind::Embeddings);
        assert_eq!(t.route("c").unwrap().kind, RouteKind::Chat);
        let dims = t.deployments.iter().find(|d| d.name == "a").unwrap();
        assert_eq!(dims.embedding.as_ref().unwrap().dimensions, 1536);
    }

    #[test]
    fn a_chain_mixing_dimensions_or_families_is_rejected() {
        let other_dim = r#""d":{"provider":"m","model":"x","context_window":8191,
            "embedding":{"family":"text-embedding-3","dimensions":3072}}"#;
        let errs = table(
            &format!("{SMALL_A},{other_dim}"),
            r#""e":{"kind":"embeddings","chain":["a","d"]}"#,
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("routes.e.chain[1]")
                && e.contains("text-embedding-3/3072")
                && e.contains("one family and dimension")),
            "{errs:?}"
        );
        let other_family = r#""g":{"provider":"m","model":"x","context_window":8191,
            "embedding":{"family":"gemini-embedding","dimensions":1536}}"#;
        let errs = table(
            &format!("{SMALL_A},{other_family}"),
            r#""e":{"kind":"embeddings","chain":["a","g"]}"#,
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes.e.chain[1]") && e.contains("gemini-embedding")),
            "{errs:?}"
        );
    }

    #[test]
    fn kinds_and_deployments_must_match() {
        let errs = table(SMALL_A, r#""e":{"kind":"embeddings","chain":["chat"]}"#).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("declares no `embedding`")),
            "{errs:?}"
        );
        let errs = table(SMALL_A, r#""x":{"chain":["a"]}"#).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("is an embedding model")),
            "{errs:?}"
        );
        let errs = table(SMALL_A, r#""x":{"kind":"vectors","chain":["a"]}"#).unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("routes.x.kind")),
            "{errs:?}"
        );
    }

    #[test]
    fn anthropic_cannot_embed_and_dimensions_are_checked() {
        let anth = r#""an":{"provider":"an","model":"claude","context_window":8191,
            "embedding":{"family":"f","dimensions":0}}"#;
        let errs = table(anth, r#""e":{"kind":"embeddings","chain":["an"]}"#).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("no embeddings API")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("deployments.an.embedding.dimensions")),
            "{errs:?}"
        );
    }
}
