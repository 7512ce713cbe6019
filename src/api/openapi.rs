//! The OpenAPI documents, generated from the handlers' annotations and the wire types in `dto`,
//! served at `/swagger/v5/swagger.json` and `/swagger/v8/swagger.json`, with a bundled Swagger UI
//! at `/swagger`. A test checks that every documented operation is routed.

use super::{auth, device_code, dto, organizations, restore_sessions};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, OAuth2, Flow, Password, Scopes, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The bearer token, and how to get one: `Bearer` (send the access_token from the token
/// operation) or, equivalently, `OAuth2` (the password flow at the token operation's URL, which
/// Swagger UI's Authorize dialog can run). Every operation that needs a token accepts either.
fn add_security(openapi: &mut utoipa::openapi::OpenApi, token_url: &str) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "Bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(format!("The access_token from {token_url}")))
                .build(),
        ),
    );
    components.add_security_scheme(
        "OAuth2",
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::Password(Password::with_refresh_url(token_url, Scopes::new(), token_url))],
            "The same bearer token, obtained with the OAuth 2.0 password grant (RFC 6749 section 4.3)",
        )),
    );
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch].into_iter().flatten() {
            if let Some(security) = operation.security.as_mut() {
                if !security.is_empty() {
                    security.push(SecurityRequirement::new("OAuth2", Vec::<String>::new()));
                }
            }
        }
    }
}

struct SecurityV5;

impl Modify for SecurityV5 {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        add_security(openapi, "/v5/Token");
    }
}

struct SecurityV8;

impl Modify for SecurityV8 {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        add_security(openapi, "/v8/token");
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "restoregate REST API", version = "v5",
         description = "Restore sessions of Microsoft 365 backups in the wire format of the Veeam Backup for Microsoft 365 REST API v5."),
    paths(
        auth::token,
        organizations::add, organizations::list, organizations::get, organizations::delete,
        restore_sessions::explore, restore_sessions::list, restore_sessions::get, restore_sessions::action,
        restore_sessions::events,
        device_code::restore_device_code, device_code::check,
        super::health,
    ),
    components(schemas(dto::ExceptionInfo, dto::OAuthError)),
    modifiers(&SecurityV5),
)]
pub struct V5Doc;

#[derive(OpenApi)]
#[openapi(
    info(title = "restoregate REST API", version = "v8",
         description = "The later API version's shapes of the same operations, served beside v5."),
    paths(
        auth::token_v8,
        restore_sessions::explore_v8, restore_sessions::list_v8, restore_sessions::get_v8, restore_sessions::stop_v8,
        restore_sessions::events_v8,
        device_code::restore_device_code_v8, device_code::check_v8,
    ),
    components(schemas(dto::ExceptionInfo, dto::OAuthError)),
    modifiers(&SecurityV8),
)]
pub struct V8Doc;

/// A document as served. utoipa 5 writes the fields of link objects in snake case
/// (`operation_id`, `request_body`); OpenAPI spells them `operationId`, `operationRef` and
/// `requestBody`, and clients following links (Swagger UI, schemathesis) read only those.
pub fn served(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).expect("an OpenAPI document is JSON");
    if let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for operation in item.values_mut().filter_map(|o| o.as_object_mut()) {
                let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
                for response in responses.values_mut() {
                    let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else { continue };
                    for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                        for (from, to) in [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")] {
                            if let Some(v) = link.remove(from) {
                                link.insert(to.to_string(), v);
                            }
                        }
                    }
                }
            }
        }
    }
    value
}

pub fn v5() -> serde_json::Value {
    served(V5Doc::openapi())
}

pub fn v8() -> serde_json::Value {
    served(V8Doc::openapi())
}

pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/swagger")
        .external_url_unchecked("/swagger/v5/swagger.json", v5())
        .external_url_unchecked("/swagger/v8/swagger.json", v8())
        .into()
}
