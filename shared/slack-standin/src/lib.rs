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
//!   `no_text`, `invalid_blocks` (more than 50 blocks), `message_not_found`.
//!
//! Channels exist when the stand-in is created with them. Messages are kept, so a test reads what
//! "Slack" shows after each call.

use std::sync::{Arc, Mutex};

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

    /// Every call so far: the method and the error answered (`None` for `ok: true`).
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().expect("state").calls.clone()
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
    let api_method = request
        .path
        .strip_prefix("/api/")
        .unwrap_or(&request.path)
        .to_owned();
    let answer = answer(&request, &api_method, state, token, channels);
    let error = answer["error"].as_str().map(str::to_owned);
    state.lock().expect("state").calls.push((api_method, error));
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
