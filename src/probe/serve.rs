//! A small HTTP target that agents (and `kpatrol serve`) answer with: HTTP/1.1 and h2c on
//! one port. `?status=503` picks the status (200–599), `?delay=250ms` (or a number of
//! milliseconds) delays the answer, up to a minute.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::duration::parse_duration;
use crate::pressure::Stop;

/// The target's answer to one request.
pub(crate) async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut status = StatusCode::OK;
    let mut delay = Duration::ZERO;
    for pair in req.uri().query().unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("status", v)) => {
                if let Some(s) = v
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (200..=599).contains(c))
                    .and_then(|c| StatusCode::from_u16(c).ok())
                {
                    status = s;
                }
            }
            Some(("delay", v)) => {
                delay = v
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .ok()
                    .or_else(|| parse_duration(v))
                    .unwrap_or_default()
                    .min(Duration::from_secs(60));
            }
            _ => {}
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = if req.method() == hyper::Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(b"kpatrol ok\n")
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

/// A listener with a deep accept queue, so bursts of new connections are not dropped.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves the target on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, stop: Stop) -> std::io::Result<()> {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // out of file descriptors and the like: keep serving
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.stopped() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(answer);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
