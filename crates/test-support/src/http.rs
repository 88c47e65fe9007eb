//! Just enough HTTP/1.1 for test servers and the fault proxy: read requests and responses off a
//! connection (`Content-Length`, chunked, or until close), keep whatever follows for the next
//! message (keep-alive, pipelining), and write them back with a fresh `Content-Length`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Refuse heads larger than this (a test server, not a general one).
const MAX_HEAD: usize = 64 * 1024;

/// One request, its body de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/v1/secret/metadata/app/?list=true`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query (after `?`), or empty.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The request as bytes: its own headers (minus framing and `Expect`), a `Content-Length`,
    /// and `Connection: close` when `close` (the proxy opens one upstream connection per
    /// request, so it reads each answer to its end without guessing).
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (k, v) in &self.headers {
            if is_framing(k) || k.eq_ignore_ascii_case("expect") {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || !matches!(self.method.as_str(), "GET" | "HEAD" | "DELETE") {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// One response, its body de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body and no headers yet.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            reason: reason(status).to_string(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The response as bytes with a fresh `Content-Length` (kept as received for an answer to
    /// `HEAD`, which has no body) and `Connection: keep-alive` or `close`.
    pub fn to_bytes(&self, keep_alive: bool, to_head: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (k, v) in &self.headers {
            if is_framing(k) && !(to_head && k.eq_ignore_ascii_case("content-length")) {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !to_head {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str(if keep_alive {
            "Connection: keep-alive\r\n"
        } else {
            "Connection: close\r\n"
        });
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !to_head {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers that describe one hop's framing; rewritten on every hop.
fn is_framing(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One side of a connection, with the bytes read past the last message kept for the next.
pub struct Conn<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The start line and headers; `None` when the peer closed before sending anything.
    async fn head(&mut self) -> io::Result<Option<(String, Vec<(String, String)>)>> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = text.split("\r\n");
                let start = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Ok(Some((start, headers)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("the message head is too large"));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(bad("the peer closed in the middle of a message head"))
                };
            }
        }
    }

    async fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(bad("the peer closed in the middle of a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill().await? {
                return Err(bad("the peer closed in the middle of a chunked body"));
            }
        }
    }

    async fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line().await?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size `{size_line}`")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(size).await?);
            self.line().await?;
        }
    }

    async fn rest_until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? {}
        Ok(std::mem::take(&mut self.buf))
    }

    async fn body(
        &mut self,
        headers: &[(String, String)],
        until_close: bool,
    ) -> io::Result<Vec<u8>> {
        if header(headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return self.chunked().await;
        }
        match header(headers, "content-length") {
            Some(len) => {
                let n = len
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length `{len}`")))?;
                self.exact(n).await
            }
            None if until_close => self.rest_until_close().await,
            None => Ok(Vec::new()),
        }
    }

    /// Reads the next request; `None` when the client closed the connection between requests.
    /// Answers `Expect: 100-continue` so the client sends its body.
    pub async fn request(&mut self) -> io::Result<Option<Request>> {
        let Some((start, headers)) = self.head().await? else {
            return Ok(None);
        };
        let mut parts = start.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(bad(format!("bad request line `{start}`")));
        };
        if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let body = self.body(&headers, false).await?;
        Ok(Some(Request {
            method: method.to_string(),
            target: target.to_string(),
            headers,
            body,
        }))
    }

    /// Reads the response to a request (`to_head`: the request was `HEAD`, no body follows).
    /// Interim `1xx` answers are skipped.
    pub async fn response(&mut self, to_head: bool) -> io::Result<Response> {
        loop {
            let (start, headers) = self
                .head()
                .await?
                .ok_or_else(|| bad("the server closed without answering"))?;
            let mut parts = start.splitn(3, ' ');
            let _version = parts.next();
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad status line `{start}`")))?;
            let reason = parts.next().unwrap_or("").to_string();
            if (100..200).contains(&status) {
                continue;
            }
            let body = if to_head || status == 204 || status == 304 {
                Vec::new()
            } else {
                self.body(&headers, true).await?
            };
            return Ok(Response {
                status,
                reason,
                headers,
                body,
            });
        }
    }
}

/// Reads one HTTP/1.1 request from a test server's connection and returns it as raw bytes
/// (head as received, de-chunked body); `None` when the peer closes first or sends garbage.
pub async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut conn = Conn::new(s);
    let r = conn.request().await.ok()??;
    let mut out = format!("{} {} HTTP/1.1\r\n", r.method, r.target);
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&r.body);
    Some(bytes)
}
