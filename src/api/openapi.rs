//! The OpenAPI documents, generated from the handlers' annotations and the wire types in `dto`,
//! served at `/swagger/v5/swagger.json` and `/swagger/v8/swagger.json`, with a bundled Swagger UI
//! at `/swagger`. A test checks that every documented operation is routed.

use super::{auth, device_code, dto, organizations, restore_sessions};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "Bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The access_token from /v5/Token"))
                    .build(),
            ),
        );
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
    modifiers(&BearerScheme),
)]
pub struct V5Doc;

#[derive(OpenApi)]
#[openapi(
    info(title = "restoregate REST API", version = "v8",
         description = "The later API version's shapes of the same operations, served beside v5."),
    paths(auth::token_v8, restore_sessions::explore_v8, restore_sessions::stop_v8, device_code::check_v8),
    components(schemas(dto::ExceptionInfo, dto::OAuthError)),
    modifiers(&BearerScheme),
)]
pub struct V8Doc;

pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/swagger")
        .url("/swagger/v5/swagger.json", V5Doc::openapi())
        .url("/swagger/v8/swagger.json", V8Doc::openapi())
        .into()
}
