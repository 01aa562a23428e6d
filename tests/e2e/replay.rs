//! Anti-replay through the real binary (RFC 9458 section 6.5): the same encapsulated bytes
//! posted twice are answered once and the model runs once; a request without a `Date`, or
//! dated outside `--replay-window`, gets the date problem with the gateway's own `Date`; the
//! SDK with a wrong clock sends the request once more dated by that time (for that retry
//! only, RFC 9458 section 6.5.2) and is answered; a bad
//! `--replay-window` is refused at start.

use sealgate_protocol::{Aead, bhttp, media_type};
use sealgate_test_support::{
    Gateway, GatewayOptions, encapsulate, example_request, inner_error, inner_request, sealgate, unix_now,
};

use crate::SEALGATE;

const DATE_PROBLEM: &str = "https://iana.org/assignments/http-problem-types#date";

/// How many inferences the gateway ran for `model`, from its metrics.
fn inferences(gateway: &Gateway, model: &str) -> u64 {
    let needle = format!("sealgate_inference_duration_seconds_count{{model=\"{model}\"}} ");
    gateway.scrape().lines().find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok()).unwrap_or(0)
}

fn credit_risk_request(gateway: &Gateway) -> bhttp::Request {
    let body = serde_json::to_vec(&example_request("credit-risk")).unwrap();
    inner_request(gateway, "POST", "/v2/models/credit-risk/infer", body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_encapsulated_request_posted_twice_is_answered_once() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let (sealed, pending) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
    let before = inferences(&gateway, "credit-risk");

    let first = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let answer = bhttp::Response::decode(&pending.decapsulate(&first.body).unwrap()).unwrap();
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(inferences(&gateway, "credit-risk"), before + 1);

    // A relay or a log pipeline that kept the bytes posts them again: same enc, same inner
    // request. The outer answer is still 200 (only the client can read the refusal).
    let again = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(inferences(&gateway, "credit-risk"), before + 1, "the replay did not run the model");
    assert!(gateway.logs().contains("refused a replayed request"), "{}", gateway.logs());
    assert!(gateway.scrape().contains("sealgate_replay_refusals_total{reason=\"replayed\"} 1"));

    // A fresh encapsulation of the very same inner request is a new request.
    let config = gateway.fetch_key_config().await;
    let response = gateway.exchange(&config, &credit_risk_request(&gateway)).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(inferences(&gateway, "credit-risk"), before + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replayed_bytes_get_an_inner_400_that_says_so() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let (sealed, pending) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
    // The first post is answered (its answer is not read here) ...
    assert_eq!(gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.clone()).await.status, 200);
    // ... and the answer to the second, opened by the client that made the request, says
    // why it was refused.
    let replayed = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await;
    assert_eq!(replayed.status, 200, "{}", replayed.text());
    let answer = bhttp::Response::decode(&pending.decapsulate(&replayed.body).unwrap()).unwrap();
    let (status, message) = inner_error(&answer);
    assert_eq!(status, 400);
    assert!(message.contains("replay"), "{message}");
}

/// Sends `request` exactly as given (no `Date` added) and returns the inner answer.
async fn as_is(gateway: &Gateway, request: &bhttp::Request) -> bhttp::Response {
    let config = gateway.fetch_key_config().await;
    gateway.exchange_as_is(&config, request).await
}

fn http_date(unix: i64) -> String {
    sealgate_client::http_date(u64::try_from(unix).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_undated_or_outside_the_window_gets_the_date_problem_with_the_gateways_date() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args(["--replay-window", "30s"]));
    let before = inferences(&gateway, "credit-risk");
    let now = i64::try_from(unix_now()).unwrap();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no Date", None, "no Date field"),
        ("an hour behind", Some(http_date(now - 3600)), "outside the gateway's replay window"),
        ("an hour ahead", Some(http_date(now + 3600)), "outside the gateway's replay window"),
        ("31 s behind", Some(http_date(now - 31)), "outside the gateway's replay window"),
        ("not an HTTP-date", Some("yesterday at noon".into()), "not an HTTP-date"),
        ("a UNIX time", Some(now.to_string()), "not an HTTP-date"),
    ];
    for (case, date, says) in cases {
        let mut request = credit_risk_request(&gateway);
        request.headers.retain(|f| !f.name.eq_ignore_ascii_case("date"));
        if let Some(date) = &date {
            request.headers.push(bhttp::Field::new("date", date.as_str()));
        }
        let answer = as_is(&gateway, &request).await;
        assert_eq!(answer.status, 400, "{case}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.header("content-type"), Some(&b"application/problem+json"[..]), "{case}");
        let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(problem["type"], DATE_PROBLEM, "{case}: {problem}");
        assert_eq!(problem["status"], 400, "{case}");
        assert!(problem["detail"].as_str().unwrap().contains(says), "{case}: {problem}");
        if let Some(date) = &date {
            assert!(!String::from_utf8_lossy(&answer.body).contains(date.as_str()), "{case}: the value is not echoed");
        }
        // The gateway's Date, from which a client corrects its clock.
        let theirs = std::str::from_utf8(answer.header("date").expect("a Date field")).unwrap();
        let theirs = sealgate_client::parse_http_date(theirs).expect("an IMF-fixdate");
        assert!(theirs.abs_diff(unix_now()) <= 2, "{case}: the gateway's Date is its clock");
    }
    assert_eq!(inferences(&gateway, "credit-risk"), before, "nothing refused ran the model");
    assert!(gateway.scrape().contains("sealgate_replay_refusals_total{reason=\"date\"} 6"), "{}", gateway.scrape());

    // Inside the window either way is answered.
    for offset in [-25, 0, 25] {
        let mut request = credit_risk_request(&gateway);
        sealgate_client::set_date(&mut request, u64::try_from(now + offset).unwrap());
        let answer = as_is(&gateway, &request).await;
        assert_eq!(answer.status, 200, "{offset} s: {}", String::from_utf8_lossy(&answer.body));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_with_a_wrong_clock_retries_once_dated_by_the_gateways_time_and_is_answered() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let request = example_request("credit-risk");
    let refusals = |gateway: &Gateway| {
        let needle = "sealgate_replay_refusals_total{reason=\"date\"} ";
        gateway.scrape().lines().find_map(|l| l.strip_prefix(needle)?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    for wrong in [-7200i64, 5400] {
        let client = gateway.client_builder().clock_offset(wrong).build().unwrap();
        let before = refusals(&gateway);
        let answer = client.infer("credit-risk", &request).await;
        assert!(answer.is_ok(), "{wrong} s off: {:?}", answer.err().map(|e| sealgate_client::Report(&e).to_string()));
        assert_eq!(refusals(&gateway), before + 1, "{wrong} s off: refused once, then answered");
        // The gateway's time served that one retry only (RFC 9458 section 6.5.2): the next
        // request is dated by the client's own clock again, refused, and retried again.
        client.infer("credit-risk", &request).await.unwrap();
        assert_eq!(refusals(&gateway), before + 2, "{wrong} s off: the gateway's date is not kept");
        assert_eq!(client.clock_offset(), wrong, "the configured offset is unchanged");
    }
    // A client whose clock is right is answered at once.
    let before = refusals(&gateway);
    gateway.client().infer("credit-risk", &request).await.unwrap();
    assert_eq!(refusals(&gateway), before);
}

#[test]
fn a_replay_window_out_of_range_is_refused_at_start() {
    for (bad, says) in
        [("0s", "from 1s to 1h"), ("500ms", "from 1s to 1h"), ("2h", "from 1s to 1h"), ("soon", "--replay-window")]
    {
        let out = sealgate(SEALGATE, ["serve", "--replay-window", bad]);
        assert_eq!(out.status.code(), Some(2), "--replay-window {bad}");
        out.assert_failure(says);
    }
}
