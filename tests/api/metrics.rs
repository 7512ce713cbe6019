//! `/metrics` is not public: Prometheus sends the metrics token (generated once into
//! `<data dir>/metrics-token`, 0600), an administrator may use an access token, anyone else is
//! refused.

use crate::helpers::*;

#[tokio::test]
async fn metrics_need_the_metrics_token_or_an_administrators_access_token() {
    let app = spawn_app().await;
    let url = app.url("/metrics");

    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("metrics-token"), "the refusal says where the token is");
    let r = app.client.get(&url).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let file = app.data_dir.join("metrics-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let r = app.client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("restoregate_http_requests_total"));

    let admin = app.token().await;
    assert_eq!(app.client.get(&url).bearer_auth(&admin).send().await.unwrap().status(), 200);

    app.add_user("carol", "carol-password-1", false).await;
    let carol = app.login("carol", "carol-password-1").await;
    let r = app.client.get(&url).bearer_auth(&carol).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains(&token));
}
