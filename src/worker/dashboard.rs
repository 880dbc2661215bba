//! `/admin`: the operator dashboard, a static page whose HTML, JavaScript and CSS are compiled
//! into the worker (no CDN, no build step). It talks only to `/admin/api/*` with the admin
//! token the operator types in; the page itself holds no secret and needs no auth to load.

use worker::{Response, Result};

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../dashboard/app.css");
const API_JS: &str = include_str!("../../dashboard/api.js");
const DOM_JS: &str = include_str!("../../dashboard/dom.js");
const JSONPATH_JS: &str = include_str!("../../dashboard/jsonpath.js");
const TABLE_JS: &str = include_str!("../../dashboard/table.js");
const BREAKERS_JS: &str = include_str!("../../dashboard/breakers.js");
const CHARTS_JS: &str = include_str!("../../dashboard/charts.js");
const KEYS_JS: &str = include_str!("../../dashboard/keys.js");
const ROUTES_JS: &str = include_str!("../../dashboard/routes.js");
const MONEY_JS: &str = include_str!("../../dashboard/money.js");
const CHAINS_JS: &str = include_str!("../../dashboard/chains.js");

/// Only same-origin scripts, styles, images and API calls; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/admin" | "/admin/" | "/admin/index.html" => {
            Some((INDEX_HTML, "text/html; charset=utf-8"))
        }
        "/admin/app.js" => Some((APP_JS, JS)),
        "/admin/api.js" => Some((API_JS, JS)),
        "/admin/dom.js" => Some((DOM_JS, JS)),
        "/admin/jsonpath.js" => Some((JSONPATH_JS, JS)),
        "/admin/table.js" => Some((TABLE_JS, JS)),
        "/admin/breakers.js" => Some((BREAKERS_JS, JS)),
        "/admin/charts.js" => Some((CHARTS_JS, JS)),
        "/admin/keys.js" => Some((KEYS_JS, JS)),
        "/admin/routes.js" => Some((ROUTES_JS, JS)),
        "/admin/money.js" => Some((MONEY_JS, JS)),
        "/admin/chains.js" => Some((CHAINS_JS, JS)),
        "/admin/app.css" => Some((APP_CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// Whether `path` is one of the dashboard's files.
pub fn is_asset(path: &str) -> bool {
    asset(path).is_some()
}

/// The dashboard file at `path` (404 when there is none).
pub fn serve(path: &str) -> Result<Response> {
    let Some((body, content_type)) = asset(path) else {
        return Response::error("not found", 404);
    };
    Response::ok(body).and_then(|mut r| {
        let h = r.headers_mut();
        h.set("content-type", content_type)?;
        h.set("content-security-policy", CSP)?;
        h.set("x-content-type-options", "nosniff")?;
        h.set("referrer-policy", "no-referrer")?;
        h.set("cache-control", "no-store")?;
        Ok(r)
    })
}
