//! `sluice demo-backends` as the quick start and Envoy use it: every request on a
//! kept-alive HTTP/1.1 connection is answered 200 with the backend's name in the
//! `x-backend` header and the body (spoken here as raw HTTP/1.1, RFC 9112, not through
//! an HTTP library); a port already in use is an error naming the backend and address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The running command; killed when dropped.
struct Backends(Child);

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo_backends(backends: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("demo-backends");
    for b in backends {
        command.arg("--backend").arg(b);
    }
    command
}

/// Starts two backends on free ports; returns them with their bound addresses, read
/// from the `NAME listening on ADDR` lines.
fn start_two() -> (Backends, Vec<(String, SocketAddr)>) {
    let mut child = demo_backends(&["alpha=127.0.0.1:0", "beta=127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sluice demo-backends");
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
    let backends = Backends(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut bound = Vec::new();
    for _ in 0..2 {
        let line = lines.next().expect("a listening line").expect("read");
        let (name, addr) = line.split_once(" listening on ").expect("line format");
        bound.push((name.to_owned(), addr.parse().expect("address")));
    }
    (backends, bound)
}

/// One HTTP/1.1 response: status line, lower-cased headers, body (by Content-Length).
#[derive(Debug)]
struct Answer {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_answer(reader: &mut BufReader<TcpStream>) -> Answer {
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header format");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let answer = Answer {
        status: status.trim_end().to_owned(),
        headers,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .expect("content-length")
        .parse()
        .expect("length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    Answer {
        body: String::from_utf8(body).expect("utf-8"),
        ..answer
    }
}

#[test]
fn each_backend_names_itself_on_every_request_of_a_kept_alive_connection() {
    let (_backends, bound) = start_two();
    for (name, addr) in &bound {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        // A request with a body, then one without, on the same connection.
        let requests = [
            (
                "POST",
                "/echo/a",
                "POST /echo/a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
            ),
            ("GET", "/echo", "GET /echo HTTP/1.1\r\nhost: x\r\n\r\n"),
        ];
        for (method, path, request) in requests {
            writer.write_all(request.as_bytes()).expect("send");
            let answer = read_answer(&mut reader);
            assert_eq!(answer.status, "HTTP/1.1 200 OK", "{answer:?}");
            assert_eq!(
                answer.header("x-backend"),
                Some(name.as_str()),
                "{answer:?}"
            );
            assert_eq!(answer.body, format!("{name} answered {method} {path}\n"));
            assert_ne!(answer.header("connection"), Some("close"), "{answer:?}");
        }
    }
}

#[test]
fn a_port_in_use_is_an_error_naming_backend_and_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = demo_backends(&[&format!("echo-v1={addr}")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("demo backend echo-v1: cannot listen on {addr}"))
            && err.contains("in use"),
        "stderr: {err}"
    );
}

#[test]
fn a_malformed_backend_is_a_usage_error() {
    let out = demo_backends(&["127.0.0.1:9001"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected NAME=ADDRESS"), "stderr: {err}");
}
