//! The OpenAPI documents: served, complete, and every documented operation is routed.

use crate::helpers::*;
use serde_json::Value;

async fn doc(app: &TestApp, version: &str) -> Value {
    let r = app.client.get(app.url(&format!("/swagger/{version}/swagger.json"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn documents_describe_the_api_and_every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let v5 = doc(&app, "v5").await;
    assert!(v5["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(v5["components"]["securitySchemes"]["Bearer"]["scheme"], "bearer");
    for path in [
        "/v5/Token",
        "/v5/Organizations",
        "/v5/Organizations/{organizationId}/Action",
        "/v5/RestoreSessions/{restoreSessionId}/Events",
        "/v5/RestoreSessions/{restoreSessionId}/organization/restoreDeviceCode",
        "/v5/DeviceCode/check",
    ] {
        assert!(v5["paths"].get(path).is_some(), "{path} is not documented");
    }
    let v8 = doc(&app, "v8").await;
    for path in ["/v8/token", "/v8/Organizations/{organizationId}/explore", "/v8/RestoreSessions/{restoreSessionId}/Stop", "/v8/DeviceCode/check"] {
        assert!(v8["paths"].get(path).is_some(), "{path} is not documented");
    }

    let mut operations = 0;
    for d in [&v5, &v8] {
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let concrete = path.replace("{organizationId}", "00000000-0000-0000-0000-000000000001").replace("{restoreSessionId}", "00000000-0000-0000-0000-000000000002");
                let request = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
                let r = request.header("content-type", "application/json").body("{}").send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                assert!(status != 405 && !body.contains("There is no resource"), "{method} {path} is documented but not routed ({status} {body})");
                let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
                assert!(documented.iter().any(|s| **s == status.to_string()), "{method} {path} answered {status}, documented {documented:?}");
                if op.get("security").is_some() {
                    assert_eq!(status, 401, "{method} {path} without a token");
                }
            }
        }
    }
    assert!(operations >= 16, "{operations} operations");

    let r = app.client.get(app.url("/swagger/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().to_lowercase().contains("swagger"));
}
