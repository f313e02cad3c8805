//! The sample plugins against their API emulators, through the plugin test harness: every
//! exit, the exact requests sent, and secrets never in what the journey records.

use flowhost::demo::crm::{CrmApi, LIST_ID};
use flowhost::demo::genai::ChatApi;
use flowhost::demo::webinar::{FULL_WEBINAR, OPEN_WEBINAR, WebinarApi};
use flowhost::person::Person;
use flowhost::testing::{PluginRun, PluginTest};
use flowhost_tests::components as c;
use serde_json::{Value, json};

fn ada() -> Person {
    Person {
        id: "ada".into(),
        emails: vec!["ada@example.com".into()],
        attributes: json!({"firstName": "Ada", "lastName": "Lovelace", "country": "GB"})
            .as_object()
            .unwrap()
            .clone(),
        ..Person::default()
    }
}

fn body(r: &flowhost::testing::Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn assert_no_secret(run: &PluginRun, secret: &str) {
    let text = run.journey_text();
    assert!(!text.contains(secret), "secret in the journey: {text}");
}

// --- webinar-registration -------------------------------------------------------------------

const ZOOM_TOKEN: &str = "zoom-secret-token-1";

fn webinar_test(api: &WebinarApi, webinar: &str) -> PluginTest {
    PluginTest::new("webinar-registration", c::WEBINAR_REGISTRATION)
        .setting("base_url", &api.url())
        .secret("api_token", ZOOM_TOKEN)
        .grant(&api.server.addr.to_string())
        .config(json!({"webinar_id": webinar}))
        .person(ada())
}

#[tokio::test]
async fn webinar_registration_takes_every_exit() {
    let api = WebinarApi::start(ZOOM_TOKEN).await;

    let run = webinar_test(&api, OPEN_WEBINAR).run().await;
    assert_eq!(run.exit(), Some("registered"), "{run:?}");
    let registrant = api.registrants(OPEN_WEBINAR)["ada@example.com"].clone();
    assert_eq!(run.variables["registrant_id"], json!(registrant));
    assert_eq!(
        run.variables["join_url"],
        json!(format!(
            "https://zoom.example/w/{OPEN_WEBINAR}?tk={registrant}"
        ))
    );
    let sent = &api.server.received()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.path,
        format!("/v2/webinars/{OPEN_WEBINAR}/registrants")
    );
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {ZOOM_TOKEN}").as_str())
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        body(sent),
        json!({"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"})
    );
    assert_no_secret(&run, ZOOM_TOKEN);

    let again = webinar_test(&api, OPEN_WEBINAR).run().await;
    assert_eq!(again.exit(), Some("already-registered"));
    assert!(!again.changed.contains_key("join_url"));

    let full = webinar_test(&api, FULL_WEBINAR).run().await;
    assert_eq!(full.exit(), Some("full"));
    let missing = webinar_test(&api, "123").run().await;
    assert_eq!(missing.exit(), Some("not-found"));

    let wrong_token = webinar_test(&api, OPEN_WEBINAR)
        .secret("api_token", "expired")
        .person(Person {
            emails: vec!["grace@example.com".into()],
            ..ada()
        })
        .run()
        .await;
    assert_eq!(
        wrong_token.failure(),
        Some("plugin error: webinar API answered 401 (code 124): Invalid access token.")
    );
    let no_email = webinar_test(&api, OPEN_WEBINAR)
        .person(Person::default())
        .run()
        .await;
    assert!(no_email.failure().unwrap().contains("no email address"));
    assert_eq!(
        api.server.received().len(),
        5,
        "no request without an email"
    );
}

// --- genai-content ----------------------------------------------------------------------------

const OPENAI_KEY: &str = "sk-test-0123456789";

fn genai_test(api: &ChatApi, prompt: &str) -> PluginTest {
    PluginTest::new("genai-content", c::GENAI_CONTENT)
        .setting("base_url", &api.url())
        .setting("model", "gpt-4o-mini")
        .secret("api_key", OPENAI_KEY)
        .grant(&api.server.addr.to_string())
        .config(json!({"prompt": prompt, "system": "You write short SMS for {{person.country}}."}))
        .person(ada())
        .variable("product", json!("the Flows course"))
}

#[tokio::test]
async fn genai_content_generates_refuses_and_fails_clearly() {
    let api = ChatApi::start(OPENAI_KEY).await;

    let run = genai_test(&api, "Invite {{person.firstName}} to {{product}}")
        .run()
        .await;
    assert_eq!(run.exit(), Some("generated"), "{run:?}");
    assert_eq!(
        run.variables["content"],
        json!("Hello! Invite Ada to the Flows course")
    );
    let sent = &api.server.received()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(
        body(sent),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You write short SMS for GB."},
                {"role": "user", "content": "Invite Ada to the Flows course"}
            ],
            "max_tokens": 200,
            "temperature": 0.7
        })
    );
    assert_no_secret(&run, OPENAI_KEY);

    // The flow's own model, token limit and output variable.
    let run = genai_test(&api, "one two three four five")
        .config(
            json!({"prompt": "one two three four five", "model": "gpt-4o",
                       "max_tokens": 3, "output_variable": "sms"}),
        )
        .run()
        .await;
    assert_eq!(run.variables["sms"], json!("Hello! one two"));
    assert!(format!("{:?}", run.logs).contains("cut at max_tokens"));

    for marker in ["[filtered]", "[refuse]"] {
        let run = genai_test(&api, &format!("say {marker}")).run().await;
        assert_eq!(run.exit(), Some("refused"), "{marker}");
        assert!(!run.changed.contains_key("content"));
    }

    // 429 with Retry-After: 0 is retried once.
    let before = api.server.received().len();
    let run = genai_test(&api, "[busy] hello").run().await;
    assert_eq!(run.exit(), Some("generated"), "{run:?}");
    assert_eq!(api.server.received().len(), before + 2);
    assert!(format!("{:?}", run.logs).contains("rate limited; retrying once"));

    let run = genai_test(&api, "[slow] hello")
        .config(json!({"prompt": "[slow] hello", "timeout_ms": 300}))
        .run()
        .await;
    assert!(
        run.failure()
            .unwrap()
            .contains("did not answer within 300 ms"),
        "{run:?}"
    );

    let run = genai_test(&api, "hi")
        .secret("api_key", "sk-wrong")
        .run()
        .await;
    assert!(
        run.failure()
            .unwrap()
            .contains("401: Incorrect API key provided. (invalid_api_key)"),
        "{run:?}"
    );
    let run = genai_test(&api, "hi {{unknown}}").run().await;
    assert!(
        run.failure().unwrap().contains("{{unknown}} has no value"),
        "{run:?}"
    );
}

// --- crm-sync ----------------------------------------------------------------------------------

const HUBSPOT_TOKEN: &str = "pat-eu1-secret-42";

fn crm_test(api: &CrmApi) -> PluginTest {
    PluginTest::new("crm-sync", c::CRM_SYNC)
        .setting("base_url", &api.url())
        .secret("access_token", HUBSPOT_TOKEN)
        .grant(&api.server.addr.to_string())
        .person(ada())
}

#[tokio::test]
async fn crm_sync_creates_then_updates_and_adds_to_a_list() {
    let api = CrmApi::start(HUBSPOT_TOKEN).await;
    let config = json!({
        "properties": {"firstname": "{{person.firstName}}", "lastname": "{{person.lastName}}",
                       "country": "{{person.country}}", "lifecyclestage": "lead"},
        "list_id": LIST_ID
    });
    let run = crm_test(&api).config(config.clone()).run().await;
    assert_eq!(run.exit(), Some("created"), "{run:?}");
    let id = run.variables["crm_contact_id"].as_str().unwrap().to_owned();
    assert_eq!(
        Value::Object(api.contact(&id).unwrap()),
        json!({"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace",
               "country": "GB", "lifecyclestage": "lead"})
    );
    assert!(api.list_members(LIST_ID).contains(&id));
    let sent = api.server.received();
    let calls: Vec<(String, String)> = sent
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".into(), "/crm/v3/objects/contacts/search".into()),
            ("POST".into(), "/crm/v3/objects/contacts".into()),
            (
                "PUT".into(),
                format!("/crm/v3/lists/{LIST_ID}/memberships/add")
            ),
        ]
    );
    assert!(
        sent.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {HUBSPOT_TOKEN}")))
    );
    assert_eq!(
        body(&sent[0]),
        json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "ada@example.com"}]}],
               "properties": ["email"], "limit": 1})
    );
    assert_eq!(body(&sent[2]), json!([id]));
    assert_no_secret(&run, HUBSPOT_TOKEN);

    // The same person again: found and updated, with the default property mapping.
    let run = crm_test(&api)
        .person(Person {
            attributes: json!({"firstName": "Augusta Ada", "lastName": "King"})
                .as_object()
                .unwrap()
                .clone(),
            ..ada()
        })
        .run()
        .await;
    assert_eq!(run.exit(), Some("updated"));
    assert_eq!(run.variables["crm_contact_id"], json!(id));
    let patch = &api.server.received()[4];
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", format!("/crm/v3/objects/contacts/{id}").as_str())
    );
    assert_eq!(
        body(patch),
        json!({"properties": {"firstname": "Augusta Ada", "lastname": "King"}})
    );
    assert_eq!(api.contact(&id).unwrap()["lastname"], json!("King"));
}

#[tokio::test]
async fn crm_sync_failures_name_the_call_and_the_reason() {
    let api = CrmApi::start(HUBSPOT_TOKEN).await;
    let run = crm_test(&api)
        .config(json!({"properties": {"favourite_colour": "blue"}}))
        .run()
        .await;
    assert!(
        run.failure()
            .unwrap()
            .contains("CRM create answered 400: Property values were not valid"),
        "{run:?}"
    );
    let run = crm_test(&api).config(json!({"list_id": "999"})).run().await;
    assert!(
        run.failure()
            .unwrap()
            .contains("CRM list membership answered 404: List 999 does not exist."),
        "{run:?}"
    );
    let run = crm_test(&api)
        .secret("access_token", "pat-wrong")
        .run()
        .await;
    assert!(
        run.failure().unwrap().contains("CRM search answered 401"),
        "{run:?}"
    );
    assert_no_secret(&run, "pat-wrong");
}
