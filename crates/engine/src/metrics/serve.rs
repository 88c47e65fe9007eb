//! The metrics endpoint: a small HTTP/1 server (hyper) that lives as long as the run.
//!
//! * `GET <path>` (default `/metrics`): the metrics, Prometheus text format 0.0.4.
//! * `GET /health`: 200 while the process runs (liveness).
//! * `GET /ready`: 200 once the run is set up and every backend it uses has answered
//!   ([`Metrics::readiness`]); 503 with what it waits for before that.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Metrics;
use crate::error::{Error, ErrorKind, Result};

/// The running endpoint; dropping it stops the server.
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `metrics` on `address:port`. Binding fails with an error that names the
/// address and says what to do.
pub async fn serve(metrics: Metrics, address: IpAddr, port: u16, path: String) -> Result<Server> {
    let want = SocketAddr::new(address, port);
    let listener = TcpListener::bind(want).await.map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!(
                "cannot serve metrics on {want}: {e}; pick a free port with `--metrics-port` or `metrics.port` (or stop whatever listens on port {port}), or set `metrics.address` to an address of this machine"
            ),
        )
    })?;
    let addr = listener.local_addr().unwrap_or(want);
    tracing::info!(address = %addr, path = %path, "serving metrics (and /health, /ready)");
    let task = tokio::spawn(accept_loop(listener, metrics, path));
    Ok(Server { addr, task })
}

async fn accept_loop(listener: TcpListener, metrics: Metrics, path: String) {
    let path: std::sync::Arc<str> = path.into();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, path) = (metrics.clone(), path.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = respond(&metrics, &path, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn respond<B>(metrics: &Metrics, path: &str, req: &Request<B>) -> Response<Full<Bytes>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        p if p == path => match metrics.encode() {
            Ok(body) => {
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => match metrics.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            format!("not found; metrics are at {path}, liveness at /health, readiness at /ready\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(base: &str, method: Method, path: &str) -> (u16, String, String) {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let r = reqwest::Client::new()
            .request(method, format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), ct, r.text().await.unwrap())
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let m = Metrics::new();
        let server = serve(m.clone(), "127.0.0.1".parse().unwrap(), 0, "/prom".into())
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let (s, ct, body) = get(&base, Method::GET, "/prom").await;
        assert_eq!(s, 200);
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            body.contains("# TYPE secretsync_build_info gauge"),
            "{body}"
        );
        assert_eq!(get(&base, Method::GET, "/health").await.0, 200);
        let (s, _, body) = get(&base, Method::GET, "/ready").await;
        assert_eq!(s, 503);
        assert!(body.starts_with("not ready: connecting"), "{body}");
        m.setup_done(false, false, Duration::ZERO);
        assert_eq!(
            get(&base, Method::GET, "/ready").await,
            (200, "text/plain; charset=utf-8".into(), "ready\n".into())
        );
        let (s, _, body) = get(&base, Method::GET, "/metrics").await;
        assert_eq!(s, 404);
        assert!(body.contains("metrics are at /prom"), "{body}");
        assert_eq!(get(&base, Method::POST, "/prom").await.0, 405);
        assert_eq!(get(&base, Method::HEAD, "/health").await.0, 200);
        drop(server);
        // Dropping the server stops it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(reqwest::get(format!("{base}/health")).await.is_err());
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let first = serve(Metrics::new(), "127.0.0.1".parse().unwrap(), 0, "/m".into())
            .await
            .unwrap();
        let port = first.local_addr().port();
        let err = serve(
            Metrics::new(),
            "127.0.0.1".parse().unwrap(),
            port,
            "/m".into(),
        )
        .await
        .err()
        .expect("the port is taken");
        assert!(
            err.message
                .starts_with(&format!("cannot serve metrics on 127.0.0.1:{port}: ")),
            "{}",
            err.message
        );
        assert!(err.message.contains("--metrics-port"), "{}", err.message);
    }
}
