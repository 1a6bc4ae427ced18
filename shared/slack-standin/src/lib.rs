//! A local stand-in of the Slack Web API, for the Slack app mode's tests (Slack is not reachable
//! here). It implements exactly the documented shapes of the two methods lockreaper calls, and
//! refuses everything else the way Slack does:
//!
//! - every call is `POST <base>/api/<method>` with `Authorization: Bearer <bot token>` and a JSON
//!   object body (`Content-Type: application/json`); the answer is HTTP 200 with
//!   `{"ok": true, …}` or `{"ok": false, "error": "<code>"}` (docs.slack.dev/apis/web-api: "the
//!   response … will always include a top-level boolean property `ok`"; failures carry `error`);
//! - `chat.postMessage` (docs.slack.dev/reference/methods/chat.postMessage): `channel` required,
//!   one of `text`/`blocks`, optional `thread_ts`; answers `{"ok", "channel", "ts", "message"}`;
//! - `chat.update` (docs.slack.dev/reference/methods/chat.update): `channel` and `ts` required,
//!   `text`/`blocks`; answers `{"ok", "channel", "ts", "text", "message"}`;
//! - errors used: `not_authed` (no token), `invalid_auth` (another token), `unknown_method`,
//!   `invalid_post_type` (not JSON), `invalid_json`, `json_not_object`, `channel_not_found`,
//!   `no_text`, `invalid_blocks` (more than 50 blocks), `message_not_found`;
//! - `usergroups.users.list` (docs.slack.dev/reference/methods/usergroups.users.list, bot scope
//!   `usergroups:read`) is the exception to JSON: its documented content type is
//!   `application/x-www-form-urlencoded` only, arguments in the query string or the POST body
//!   ("This method does not currently accept application/json"), so a JSON body carries no
//!   argument and is answered as a call without `usergroup` (`invalid_arguments`). Arguments
//!   `usergroup` (required), `include_disabled`, `team_id`; answers `{"ok": true, "users": [ids]}`
//!   or the documented `no_such_subteam` (no such group, or a disabled one unless
//!   `include_disabled`); any other documented error (`plan_upgrade_required`, `missing_scope`,
//!   `ratelimited`) when a test makes the method fail ([`SlackApi::fail_method`]).
//!
//! Channels exist when the stand-in is created with them; user groups when a test sets them
//! ([`SlackApi::set_usergroup`]). Messages are kept, so a test reads what "Slack" shows after each
//! call. A test can also slow every answer down ([`SlackApi::set_delay`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One message as the stand-in holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: Option<String>,
    pub blocks: Vec<Value>,
}

#[derive(Default)]
struct State {
    messages: Vec<SlackMessage>,
    /// Every call: method and the `error` answered, if any.
    calls: Vec<(String, Option<String>)>,
    next_ts: u64,
    /// User group ID → (members, enabled).
    usergroups: BTreeMap<String, (Vec<String>, bool)>,
    /// Method → the error it answers, set by [`SlackApi::fail_method`].
    failing: BTreeMap<String, String>,
    /// How long every answer waits, set by [`SlackApi::set_delay`].
    delay: Duration,
    /// Method → requests being answered now, and the most there ever were at once.
    in_flight: BTreeMap<String, (usize, usize)>,
}

/// The running stand-in; stops when dropped.
pub struct SlackApi {
    /// `http://127.0.0.1:<port>`: the base URL the client is configured with (it appends
    /// `/api/<method>`).
    pub base_url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlackApi {
    /// Starts the stand-in for `bot_token`, with `channels` existing.
    pub async fn start(bot_token: &str, channels: &[&str]) -> SlackApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            next_ts: 1_741_086_927,
            ..State::default()
        }));
        let token = bot_token.to_owned();
        let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, token, channels) =
                    (Arc::clone(&shared), token.clone(), channels.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &state, &token, &channels).await;
                });
            }
        });
        SlackApi {
            base_url,
            state,
            task,
        }
    }

    /// The messages "Slack" shows now, oldest first.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.state.lock().expect("state").messages.clone()
    }

    /// Creates or replaces user group `id` (`S…`) with `members` (user IDs), enabled.
    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|m| (*m).to_owned()).collect();
        self.state
            .lock()
            .expect("state")
            .usergroups
            .insert(id.to_owned(), (members, true));
    }

    /// Disables user group `id` (as an admin can): `usergroups.users.list` then answers
    /// `no_such_subteam` for it unless called with `include_disabled`.
    pub fn disable_usergroup(&self, id: &str) {
        if let Some(group) = self.state.lock().expect("state").usergroups.get_mut(id) {
            group.1 = false;
        }
    }

    /// Makes every call of `method` answer `{"ok": false, "error": error}` (after the token
    /// check), e.g. `plan_upgrade_required` or `ratelimited`.
    pub fn fail_method(&self, method: &str, error: &str) {
        self.state
            .lock()
            .expect("state")
            .failing
            .insert(method.to_owned(), error.to_owned());
    }

    /// Every answer waits `delay` first (a slow Slack).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().expect("state").delay = delay;
    }

    /// Every call so far: the method and the error answered (`None` for `ok: true`).
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().expect("state").calls.clone()
    }

    /// The most calls of `method` that were being answered at the same time: with a
    /// [`SlackApi::set_delay`], how a test tells concurrent calls from sequential ones without
    /// timing them.
    pub fn most_concurrent_calls(&self, method: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.in_flight.get(method).map_or(0, |&(_, most)| most)
    }
}

/// A request as read off the socket.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn serve(
    mut stream: TcpStream,
    state: &Mutex<State>,
    token: &str,
    channels: &[String],
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let path = request
        .path
        .split_once('?')
        .map_or(&request.path[..], |(p, _)| p);
    let api_method = path.strip_prefix("/api/").unwrap_or(path).to_owned();
    let delay = {
        let mut state = state.lock().expect("state");
        let (now, most) = state.in_flight.entry(api_method.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        state.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = answer(&request, &api_method, state, token, channels);
    let error = answer["error"].as_str().map(str::to_owned);
    {
        let mut state = state.lock().expect("state");
        if let Some((now, _)) = state.in_flight.get_mut(&api_method) {
            *now -= 1;
        }
        state.calls.push((api_method, error));
    }
    let body = answer.to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn fail(error: &str) -> Value {
    json!({"ok": false, "error": error})
}

fn answer(
    request: &Request,
    api_method: &str,
    state: &Mutex<State>,
    token: &str,
    channels: &[String],
) -> Value {
    let Some(authorization) = request.header("authorization") else {
        return fail("not_authed");
    };
    if authorization != format!("Bearer {token}") {
        return fail("invalid_auth");
    }
    if let Some(error) = state.lock().expect("state").failing.get(api_method) {
        return fail(error);
    }
    if api_method == "usergroups.users.list" {
        return usergroup_members(request, state);
    }
    if !matches!(api_method, "chat.postMessage" | "chat.update") {
        return fail("unknown_method");
    }
    if request.method != "POST" {
        return fail("invalid_post_type");
    }
    let json_body = request
        .header("content-type")
        .is_some_and(|t| t.split(';').next().unwrap_or_default().trim() == "application/json");
    if !json_body {
        return fail("invalid_post_type");
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(_) => return fail("invalid_json"),
    };
    let Some(args) = body.as_object() else {
        return fail("json_not_object");
    };
    let channel = match args.get("channel").and_then(Value::as_str) {
        Some(c) if channels.iter().any(|known| known == c) => c.to_owned(),
        _ => return fail("channel_not_found"),
    };
    let text = args.get("text").and_then(Value::as_str).map(str::to_owned);
    let blocks = match args.get("blocks") {
        None => Vec::new(),
        Some(Value::Array(blocks)) if blocks.len() <= 50 => blocks.clone(),
        Some(_) => return fail("invalid_blocks"),
    };
    if text.as_deref().unwrap_or_default().is_empty() && blocks.is_empty() {
        return fail("no_text");
    }
    let mut state = state.lock().expect("state");
    match api_method {
        "chat.postMessage" => {
            state.next_ts += 1;
            let ts = format!("{}.000100", state.next_ts);
            let message = SlackMessage {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts: args
                    .get("thread_ts")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                text,
                blocks,
            };
            let shown = shown(&message);
            state.messages.push(message);
            json!({"ok": true, "channel": channel, "ts": ts, "message": shown})
        }
        _ => {
            let Some(ts) = args.get("ts").and_then(Value::as_str) else {
                return fail("message_not_found");
            };
            let Some(message) = state
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            else {
                return fail("message_not_found");
            };
            message.text = text.clone();
            message.blocks = blocks;
            let shown = shown(message);
            json!({"ok": true, "channel": channel, "ts": ts, "text": text.unwrap_or_default(), "message": shown})
        }
    }
}

/// `usergroups.users.list`: arguments from the query string, and from the body when it is a
/// form (the only documented content type; a JSON body's members are not arguments).
fn usergroup_members(request: &Request, state: &Mutex<State>) -> Value {
    let query = request.path.split_once('?').map_or("", |(_, q)| q);
    let mut args: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let form_body = request.header("content-type").is_some_and(|t| {
        t.split(';').next().unwrap_or_default().trim() == "application/x-www-form-urlencoded"
    });
    match request.method.as_str() {
        "GET" => {}
        "POST" if form_body => {
            args.extend(form_urlencoded::parse(&request.body).into_owned());
        }
        // A JSON (or other) body: no form arguments in it.
        "POST" => {}
        _ => return fail("invalid_post_type"),
    }
    let arg = |name: &str| {
        args.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(usergroup) = arg("usergroup").filter(|g| !g.is_empty()) else {
        return fail("invalid_arguments");
    };
    let include_disabled = matches!(arg("include_disabled"), Some("true" | "1"));
    let state = state.lock().expect("state");
    match state.usergroups.get(usergroup) {
        Some((members, enabled)) if *enabled || include_disabled => {
            json!({"ok": true, "users": members})
        }
        _ => fail("no_such_subteam"),
    }
}

/// The `message` object of an answer.
fn shown(message: &SlackMessage) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!("message"));
    out.insert("ts".into(), json!(message.ts));
    out.insert(
        "text".into(),
        json!(message.text.clone().unwrap_or_default()),
    );
    out.insert("blocks".into(), json!(message.blocks));
    if let Some(thread) = &message.thread_ts {
        out.insert("thread_ts".into(), json!(thread));
    }
    Value::Object(out)
}
