//! `notify_url`: a callback to a server on 127.0.0.1 when each participant added with one
//! finishes, retried, and sent even when the participant finished while the service was
//! down.

use super::*;
use flowhost::testing::Reply;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn quick_retries(c: &mut OperatorConfig) {
    c.outbound.allow_private = vec!["127.0.0.1".into()];
    c.server.notify.backoff_ms = 50;
    c.server.notify.max_backoff_ms = 100;
}

#[tokio::test]
async fn each_finished_participant_is_notified_once_after_a_failed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let endpoint = TestServer::start_replying(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(500, "{}")
        } else {
            Reply::json(204, "")
        }
    })
    .await;
    let service = Service::with_greeting(dir.path(), quick_retries).await;
    let notify_url = format!("{}/flow-done?src=flowhost", endpoint.url());

    // A URL that cannot be called is refused, and nobody is added.
    for bad in ["not a url", "ftp://example.com/x", "http:///nohost"] {
        let refused = service
            .post(
                "/v1/flows/greeting/participants",
                &json!({"participants": [{"contact": "+385911234567"}], "notify_url": bad}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.body
        );
        assert_eq!(refused.body["errors"][0]["path"], "notify_url");
    }
    let listed = service.get("/v1/flows/greeting/participants").await;
    assert_eq!(listed.body["participants"], json!([]));

    let added = service
        .post(
            "/v1/flows/greeting/participants",
            &json!({"participants": [
                {"contact": "+385911234567", "variables": {"name": "Ana"}},
                {"contact": "+385911234568", "variables": {"name": "Ivo"}},
                {"contact": "+385911234569", "variables": {"name": "Eva"}}
            ], "notify_url": notify_url}),
        )
        .await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.body);
    let ids = added.body["participants"].as_array().unwrap().clone();
    let got = received(&endpoint, 4).await;
    let mut notified: Vec<(String, String)> = got[1..]
        .iter()
        .map(|r| {
            let b = body(r);
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/flow-done?src=flowhost");
            assert_eq!(r.header("idempotency-key"), b["participantId"].as_str());
            assert_eq!(b["flowId"], "greeting");
            assert_eq!(b["status"], "completed");
            (
                b["participantId"].as_str().unwrap().to_owned(),
                b["variables"]["greeting"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    notified.sort();
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .zip(["Hello, Ana", "Hello, Ivo", "Hello, Eva"])
        .map(|(id, g)| (id.as_str().unwrap().to_owned(), g.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(notified, expected, "each once, the failed one again");
    // Their state is on the participant; nothing more is sent.
    for id in &ids {
        let path = format!("/v1/participants/{}", id.as_str().unwrap());
        let mut n = Value::Null;
        for _ in 0..200 {
            n = service.get(&path).await.body["notification"].clone();
            if n["state"] == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n["state"], "sent", "{n}");
        assert_eq!(n["url"], notify_url.as_str());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(endpoint.received().len(), 4);
    service.stop().await;
}

#[tokio::test]
async fn a_participant_that_finished_while_the_service_was_down_is_notified_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = TestServer::start_replying(|_| Reply::json(200, "{}")).await;
    let service = Service::start(dir.path(), quick_retries).await;
    let nap = nap_flow();
    assert_eq!(
        service.post("/v1/flows", &nap).await.status,
        StatusCode::CREATED
    );
    let added = service
        .post(
            "/v1/flows/nap/participants",
            &json!({"participants": [{"contact": "+385911234567"}],
                    "notify_url": endpoint.url()}),
        )
        .await;
    let ids = added.body["participants"].as_array().unwrap().clone();
    service.settle(&ids).await;
    service.stop().await;

    // Meanwhile the wait ends and `flowhost resume` finishes the participant: nobody is
    // listening for it.
    let mut config = config_in(dir.path());
    quick_retries(&mut config);
    let runtime = Runtime::start(config).await.unwrap();
    runtime.load_saved_flows().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resumed = runtime.engine().resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    drop(runtime);
    assert!(endpoint.received().is_empty());

    let service = Service::start(dir.path(), quick_retries).await;
    let got = received(&endpoint, 1).await;
    assert_eq!(body(&got[0])["participantId"], ids[0]);
    assert_eq!(body(&got[0])["status"], "completed");
    service.stop().await;
}
