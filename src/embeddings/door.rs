//! The door's decisions for one embeddings request, before any upstream is called: the route
//! (it must exist, be visible to the caller's key, and be an embeddings route), the caller's
//! `dimensions` against the route's declared dimension, the order of the deployments (the
//! chain's; a canary-only step is never tried), and what the key reserves (the inputs'
//! estimated tokens at the chain's highest input price).

use crate::api::embeddings::{wrong_kind, EmbeddingsRequest};
use crate::api::models::model_not_found;
use crate::api::ApiError;
use crate::config::{Route, RouteKind, RoutingTable};
use crate::keys::KeyRecord;
use crate::state::quota::Estimate;
use crate::usage::Usage;

#[derive(Debug)]
pub struct EmbedPlan<'t> {
    pub route: &'t Route,
    /// Indices into the route's chain, in the order to try.
    pub order: Vec<usize>,
    /// What the caller's key reserves.
    pub reserve: Estimate,
}

pub fn plan<'t>(
    table: &'t RoutingTable,
    req: &EmbeddingsRequest,
    key: Option<&KeyRecord>,
) -> Result<EmbedPlan<'t>, ApiError> {
    let visible = |name: &str| key.is_none_or(|k| k.allows(name));
    let Some(route) = table.route(&req.model).filter(|r| visible(&r.name)) else {
        return Err(model_not_found(table, &req.model, visible));
    };
    if route.kind != RouteKind::Embeddings {
        return Err(wrong_kind(route, "/v1/chat/completions or /v1/messages"));
    }
    let deps: Vec<_> = route
        .chain
        .steps()
        .iter()
        .filter_map(|s| table.deployment(s.deployment))
        .collect();
    let declared = deps
        .iter()
        .find_map(|d| d.embedding.as_ref().map(|e| e.dimensions));
    if let (Some(asked), Some(max)) = (req.dimensions, declared) {
        if asked > max {
            return Err(ApiError::invalid(
                "invalid_value",
                "dimensions",
                format!(
                    "`dimensions` is {asked}, but model `{}` makes vectors of at most {max} dimensions",
                    route.name
                ),
            ));
        }
    }
    let order = route
        .chain
        .steps()
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.canary_only)
        .map(|(i, _)| i)
        .collect();
    let tokens = super::target::estimated_tokens(req);
    let usage = Usage {
        prompt_tokens: tokens,
        ..Usage::default()
    };
    let cost_nanos = deps
        .iter()
        .map(|d| usage.cost_nanos(&d.price))
        .max()
        .unwrap_or(0);
    Ok(EmbedPlan {
        route,
        order,
        reserve: Estimate { tokens, cost_nanos },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::embeddings::parse_embeddings_request;
    use crate::api::parse_chat_request;
    use crate::config::parse_table;
    use crate::routing::prepare::{prepare, Door, NoSessions, World};
    use crate::routing::NoStats;

    fn table() -> RoutingTable {
        parse_table(
            r#"{"version":1,"providers":{"m":{"kind":"mock"}},
                "deployments":{
                  "chat":{"provider":"m","model":"c","context_window":8000},
                  "e1":{"provider":"m","model":"e","context_window":8191,
                        "price":{"input_per_mtok_usd":0.02,"output_per_mtok_usd":0},
                        "embedding":{"family":"mock-embed","dimensions":64}},
                  "e2":{"provider":"m","model":"e","context_window":8191,
                        "price":{"input_per_mtok_usd":1,"output_per_mtok_usd":0},
                        "embedding":{"family":"mock-embed","dimensions":64}}},
                "routes":{"chat":{"chain":["chat"]},
                          "emb":{"kind":"embeddings","chain":["e1","e2"]}}}"#,
        )
        .unwrap()
    }

    fn req(body: &str) -> EmbeddingsRequest {
        parse_embeddings_request(body.as_bytes()).unwrap()
    }

    #[test]
    fn an_embeddings_route_is_planned_in_chain_order_with_a_reservation() {
        let t = table();
        let p = plan(
            &t,
            &req(r#"{"model":"emb","input":["abcdefgh","x"]}"#),
            None,
        )
        .unwrap();
        assert_eq!(p.route.name, "emb");
        assert_eq!(p.order, [0, 1]);
        assert_eq!(p.reserve.tokens, 3);
        assert_eq!(
            p.reserve.cost_nanos, 3_000,
            "3 tokens at the highest price, $1/Mtok"
        );
    }

    #[test]
    fn wrong_kind_unknown_model_and_too_many_dimensions_are_refused() {
        let t = table();
        let e = plan(&t, &req(r#"{"model":"chat","input":"x"}"#), None).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "model_not_supported"));
        assert!(e.message.contains("/v1/chat/completions"), "{}", e.message);
        let e = plan(&t, &req(r#"{"model":"nope","input":"x"}"#), None).unwrap_err();
        assert_eq!(e.status, 404);
        let e = plan(
            &t,
            &req(r#"{"model":"emb","input":"x","dimensions":65}"#),
            None,
        )
        .unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("dimensions")));
        assert!(plan(
            &t,
            &req(r#"{"model":"emb","input":"x","dimensions":64}"#),
            None
        )
        .is_ok());
    }

    #[test]
    fn a_chat_request_to_an_embeddings_route_is_refused() {
        let t = table();
        let mut chat =
            parse_chat_request(br#"{"model":"emb","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        let world = World {
            table: &t,
            sessions: &NoSessions,
            stats: &NoStats,
        };
        let door = Door {
            path: "/v1/chat/completions",
            headers: &[],
            key: None,
            now_ms: 0,
            random: 0,
        };
        let Err(e) = prepare(&world, &mut chat, &door) else {
            panic!("a chat request was routed to an embeddings route")
        };
        assert_eq!((e.status, e.code.as_str()), (400, "model_not_supported"));
        assert!(e.message.contains("/v1/embeddings"), "{}", e.message);
    }
}
