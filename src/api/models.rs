//! `GET /v1/models`: the routes as OpenAI's model list, each with what a client needs to pick
//! one (capabilities, context window, price range, description).

use crate::api::ApiError;
use crate::config::{Deployment, Route, RouteKind, RoutingTable};
use crate::usage::format_usd;
use serde_json::{json, Value};

/// The model list of `table`, with only the routes `visible` keeps (a restricted gateway key
/// sees its own routes).
pub fn model_list(table: &RoutingTable, visible: impl Fn(&str) -> bool) -> Value {
    let data: Vec<Value> = table
        .routes
        .values()
        .filter(|r| visible(&r.name))
        .map(|r| model_entry(table, r))
        .collect();
    json!({"object": "list", "data": data})
}

/// 404 for a `model` that names no route; the message lists the routes `visible` keeps (a
/// restricted gateway key is told only of its own).
pub fn model_not_found(
    table: &RoutingTable,
    model: &str,
    visible: impl Fn(&str) -> bool,
) -> ApiError {
    let known: Vec<&str> = table.route_names().filter(|n| visible(n)).collect();
    let mut e = ApiError::new(
        404,
        "invalid_request_error",
        "model_not_found",
        format!(
            "The model `{model}` does not exist. Available models: {}",
            known.join(", ")
        ),
    );
    e.param = Some("model".into());
    e
}

/// One route. A capability is listed when some deployment of the chain has it (the router
/// skips those without it, so such requests are served); the context window is the smallest
/// of the chain (a prompt that fits it fits every deployment); prices are the range over the
/// chain, in USD per million tokens.
fn model_entry(table: &RoutingTable, route: &Route) -> Value {
    let deps: Vec<&Deployment> = route
        .chain
        .steps()
        .iter()
        .filter_map(|s| table.deployment(s.deployment))
        .collect();
    let any = |f: fn(&Deployment) -> bool| deps.iter().any(|d| f(d));
    let range = |f: fn(&Deployment) -> u64| {
        let min = deps.iter().map(|d| f(d)).min();
        let max = deps.iter().map(|d| f(d)).max();
        match (min, max) {
            (Some(min), Some(max)) => json!({"min": format_usd(min), "max": format_usd(max)}),
            _ => Value::Null,
        }
    };
    json!({
        "id": route.name,
        "object": "model",
        "created": 0,
        "owned_by": "edge-router",
        "description": route.description,
        "capabilities": {
            "chat": route.kind == RouteKind::Chat,
            "embeddings": route.kind == RouteKind::Embeddings,
            "tools": any(|d| d.capabilities.tools),
            "vision": any(|d| d.capabilities.vision),
            "json": any(|d| d.capabilities.json),
            "streaming": any(|d| d.capabilities.streaming),
        },
        "context_window": deps.iter().map(|d| d.context_window).min(),
        "pricing": {
            "input_per_mtok_usd": range(|d| d.price.input_nanos_per_mtok),
            "output_per_mtok_usd": range(|d| d.price.output_nanos_per_mtok),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_table;

    fn table() -> RoutingTable {
        parse_table(
            r#"{"version":1,
                "providers":{"p":{"kind":"openai","base_url":"http://x/v1"}},
                "deployments":{
                  "small":{"provider":"p","model":"s","context_window":8000,
                           "capabilities":{"vision":false,"tools":false},
                           "price":{"input_per_mtok_usd":0.15,"output_per_mtok_usd":0.6}},
                  "big":{"provider":"p","model":"b","context_window":200000,
                         "capabilities":{"vision":true,"tools":false},
                         "price":{"input_per_mtok_usd":3,"output_per_mtok_usd":15}}},
                "routes":{
                  "mixed":{"chain":["small","big"],"description":"cheap first"},
                  "only-small":{"chain":["small"]}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn each_route_says_what_it_can_do_and_cost() {
        let list = model_list(&table(), |_| true);
        let mixed = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "mixed")
            .unwrap();
        assert_eq!(mixed["object"], "model");
        assert_eq!(mixed["description"], "cheap first");
        assert_eq!(
            mixed["context_window"], 8000,
            "the smallest along the chain"
        );
        assert_eq!(mixed["capabilities"]["vision"], true, "one deployment can");
        assert_eq!(mixed["capabilities"]["tools"], false, "none can");
        assert_eq!(mixed["capabilities"]["chat"], true);
        assert_eq!(
            mixed["pricing"]["input_per_mtok_usd"],
            json!({"min": "0.15", "max": "3"})
        );
        assert_eq!(
            mixed["pricing"]["output_per_mtok_usd"],
            json!({"min": "0.6", "max": "15"})
        );
    }

    #[test]
    fn embeddings_routes_say_so() {
        let t = parse_table(
            r#"{"version":1,"providers":{"m":{"kind":"mock"}},
                "deployments":{"c":{"provider":"m","model":"c","context_window":8000},
                  "e":{"provider":"m","model":"e","context_window":8191,
                       "embedding":{"family":"mock-embed","dimensions":64}}},
                "routes":{"chat":{"chain":["c"]},"emb":{"kind":"embeddings","chain":["e"]}}}"#,
        )
        .unwrap();
        let list = model_list(&t, |_| true);
        let caps = |id: &str| {
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == id)
                .unwrap()["capabilities"]
                .clone()
        };
        assert_eq!(
            (
                caps("emb")["embeddings"].clone(),
                caps("emb")["chat"].clone()
            ),
            (json!(true), json!(false))
        );
        assert_eq!(
            (
                caps("chat")["embeddings"].clone(),
                caps("chat")["chat"].clone()
            ),
            (json!(false), json!(true))
        );
    }

    #[test]
    fn only_visible_routes_are_listed() {
        let list = model_list(&table(), |name| name == "only-small");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert_eq!(ids, ["only-small"]);
        assert_eq!(list["object"], "list");
    }

    #[test]
    fn an_unknown_model_lists_only_the_visible_routes() {
        let e = model_not_found(&table(), "gpt-9", |name| name == "mixed");
        assert_eq!((e.status, e.code.as_str()), (404, "model_not_found"));
        assert_eq!(e.param.as_deref(), Some("model"));
        assert!(
            e.message.ends_with("Available models: mixed"),
            "{}",
            e.message
        );
    }
}
