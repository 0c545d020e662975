//! Just enough WebSocket (RFC 6455) for `HTTPRouteBackendProtocolWebSocket`: the
//! handshake's accept key, unfragmented-or-fragmented data frames, ping/pong and close,
//! for the echo backend's `/ws` endpoint and for the client that talks to it through
//! Envoy. The HTTP/1.1 upgrade itself is hyper's.

use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::cases::{WebSocketCheck, WebSocketStep};
use crate::requests::{self, Target};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_PAYLOAD: u64 = 1 << 20;
const CONSECUTIVE_SUCCESSES: usize = 3;
const DEADLINE: Duration = Duration::from_secs(15);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{}{GUID}", key.trim()).as_bytes()))
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One frame: FIN bit, opcode, unmasked payload.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::other(format!("frame of {len} bytes")));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

/// Writes one frame; clients must mask (`mask` = Some), servers must not.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut out = vec![if frame.fin { 0x80 } else { 0 } | frame.opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = frame.payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(
                frame
                    .payload
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[i % 4]),
            );
        }
        None => out.extend_from_slice(&frame.payload),
    }
    w.write_all(&out).await?;
    w.flush().await
}

/// The echo backend's side once the upgrade is done: every data frame comes back as
/// it was sent, pings get pongs, a close is answered and ends the connection.
pub async fn serve_echo<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    while let Ok(frame) = read_frame(&mut io).await {
        let reply = match frame.opcode {
            OP_CLOSE => {
                let _ = write_frame(&mut io, &frame, None).await;
                return;
            }
            OP_PING => Frame {
                opcode: OP_PONG,
                ..frame
            },
            OP_PONG => continue,
            _ => frame,
        };
        if write_frame(&mut io, &reply, None).await.is_err() {
            return;
        }
    }
}

fn random_mask() -> [u8; 4] {
    (requests::random_u64() as u32).to_be_bytes()
}

/// The next data message (fragments joined), answering pings on the way.
async fn read_message<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
) -> Result<(u8, Vec<u8>), String> {
    let mut opcode = None;
    let mut payload = Vec::new();
    loop {
        let frame = read_frame(io)
            .await
            .map_err(|e| format!("reading a frame: {e}"))?;
        match frame.opcode {
            OP_PING => {
                let pong = Frame {
                    fin: true,
                    opcode: OP_PONG,
                    payload: frame.payload,
                };
                write_frame(io, &pong, Some(random_mask()))
                    .await
                    .map_err(|e| format!("answering a ping: {e}"))?;
                continue;
            }
            OP_PONG => continue,
            OP_CLOSE => return Err("the server closed the connection".into()),
            OP_CONTINUATION if opcode.is_none() => {
                return Err("continuation frame without a message".into());
            }
            OP_CONTINUATION => {}
            op => opcode = Some(op),
        }
        payload.extend_from_slice(&frame.payload);
        if frame.fin {
            return Ok((opcode.unwrap_or(OP_BINARY), payload));
        }
    }
}

fn hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("bad hex {text:?}"))
        })
        .collect()
}

/// The path of `ws://<anything>/path`.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Upstream's `AwaitConvergence` around one dial-and-exchange: it must succeed
/// `CONSECUTIVE_SUCCESSES` times in a row within `DEADLINE`.
pub async fn check(target: &Target, spec: &WebSocketCheck, test_name: &str) -> Result<(), String> {
    // The RFC 6455 example (section 1.3) guards the hand-written SHA-1 and base64.
    if accept_key("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
        return Err("the runner's WebSocket accept key is wrong".into());
    }
    let origin = format!("ws://gateway/{test_name}");
    let start = Instant::now();
    let mut streak = 0;
    let mut last = String::from("no attempt made");
    while start.elapsed() < DEADLINE {
        let result = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(target, spec, &origin))
            .await
            .unwrap_or_else(|_| Err(format!("no exchange within {ATTEMPT_TIMEOUT:?}")));
        match result {
            Ok(()) => {
                streak += 1;
                if streak >= CONSECUTIVE_SUCCESSES {
                    return Ok(());
                }
            }
            Err(e) => {
                streak = 0;
                last = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(format!("websocket {}: {last}", url_path(&spec.url)))
}

async fn exchange(target: &Target, spec: &WebSocketCheck, origin: &str) -> Result<(), String> {
    let stream = TcpStream::connect(target.socket)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn.with_upgrades());
    let key_bytes: Vec<u8> = [requests::random_u64(), requests::random_u64()]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let key = base64(&key_bytes);
    let request = hyper::Request::builder()
        .method("GET")
        .uri(url_path(&spec.url))
        .header("host", target.url_host("http"))
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-key", &key)
        .header("sec-websocket-version", "13")
        .header("origin", origin)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("upgrade request: {e}"))?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!(
            "upgrade answered {} instead of 101",
            response.status()
        ));
    }
    let accept = response
        .headers()
        .get("sec-websocket-accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept != accept_key(&key) {
        return Err(format!(
            "Sec-WebSocket-Accept {accept:?}, want {:?}",
            accept_key(&key)
        ));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let mut io = TokioIo::new(upgraded);
    for step in &spec.exchange {
        let (opcode, send, want) = step_frames(step)?;
        let frame = Frame {
            fin: true,
            opcode,
            payload: send,
        };
        write_frame(&mut io, &frame, Some(random_mask()))
            .await
            .map_err(|e| format!("sending a frame: {e}"))?;
        // Upstream reads the reply into a string or a byte slice, whatever its frame
        // type: only the payload is compared.
        let (_, got) = read_message(&mut io).await?;
        if got != want {
            return Err(format!(
                "sent {:?}, echoed {:?}, want {want:?}",
                frame.payload, got
            ));
        }
    }
    let close = Frame {
        fin: true,
        opcode: OP_CLOSE,
        payload: 1000u16.to_be_bytes().to_vec(),
    };
    let _ = write_frame(&mut io, &close, Some(random_mask())).await;
    Ok(())
}

/// (opcode, payload to send, payload expected back) of one exchange step.
fn step_frames(step: &WebSocketStep) -> Result<(u8, Vec<u8>, Vec<u8>), String> {
    match step {
        WebSocketStep {
            send_text: Some(send),
            ..
        } => {
            let want = step.expect_text.as_deref().unwrap_or(send);
            Ok((OP_TEXT, send.as_bytes().to_vec(), want.as_bytes().to_vec()))
        }
        WebSocketStep {
            send_binary_hex: Some(send),
            ..
        } => {
            let want = step.expect_binary_hex.as_deref().unwrap_or(send);
            Ok((OP_BINARY, hex(send)?, hex(want)?))
        }
        _ => Err(format!("exchange step with nothing to send: {step:?}")),
    }
}
