//! Crash test per store: writes go on continuously, the server is killed with SIGKILL, restarted,
//! and every write it had acknowledged with 2xx is there.

use crate::{add_org, admin_token, client_for, new_database, start, wait_healthy};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn crash_and_recover(env: &[(&str, &str)]) {
    restoregate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), env);
    let client = client_for(dir.path());
    wait_healthy(&client, &server.base).await;
    let token = admin_token(&client, &server.base, "cluster-admin").await;
    let org = add_org(&client, &server.base, &token).await;

    // Four writers start sessions as fast as they can; each 201 is an acknowledged write.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, base, token, org, acknowledged) = (client.clone(), server.base.clone(), token.clone(), org.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let r = client
                    .post(format!("{base}/v5/Organizations/{org}/Action"))
                    .bearer_auth(&token)
                    .json(&json!({"explore": {"type": "vex"}}))
                    .send()
                    .await;
                let Ok(r) = r else { return };
                if r.status() != 201 {
                    return;
                }
                let Ok(body) = r.json::<Value>().await else { return };
                acknowledged.lock().unwrap().push(body["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Kill once a good number of writes have been acknowledged (polled, no fixed sleep).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "writes are not being acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill").args(["-9", &server.child.id().to_string()]).status().unwrap();
    for w in writers {
        let _ = w.await;
    }
    drop(server);
    let acknowledged = acknowledged.lock().unwrap().clone();

    let server = start(dir.path(), env);
    wait_healthy(&client, &server.base).await;
    let page: Value = client
        .get(format!("{}/v5/RestoreSessions?limit=10000", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: std::collections::HashSet<&str> = page["results"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(id.as_str())).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged sessions lost: {lost:?}", lost.len(), acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_write_across_sigkill() {
    crash_and_recover(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_write_across_sigkill() {
    let (mut conn, name, url) = new_database().await;
    crash_and_recover(&[("RESTOREGATE_DATABASE_URL", &url)]).await;
    use sqlx::Executor;
    let _ = conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await;
}
