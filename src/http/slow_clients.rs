//! Slow and stalled clients: time limits on reading a request, and a cap on
//! connections served at once.
//!
//! poem 3.1 builds its hyper connections itself and exposes no header or
//! body read timeout (hyper's own `header_read_timeout` needs a timer poem
//! does not set, and does not cover the HTTP/2 sniffing that comes first), so
//! a client sending half a request held its connection for ever. Two layers
//! close that:
//!
//! - [`GuardedAcceptor`] wraps the listener. It accepts a connection only
//!   while fewer than `max_connections` are open (the others wait in the
//!   kernel's accept queue), and wraps each socket in a [`GuardedIo`] that
//!   watches the bytes read: a request's headers must be complete within
//!   `header_timeout` of its first byte (or of the connection's opening), and
//!   a connection may sit idle between requests for `keep_alive_timeout`.
//!   Past either, the read fails and hyper closes the connection.
//! - [`body_deadline`] wraps the endpoints: a request's body must arrive
//!   within `body_timeout` of its headers, else the request is answered 408
//!   and the connection closed.
//!
//! Both count the clients they cut off in `/metrics`
//! (`memberdesk_http_stalled_clients_total{phase}`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use poem::http::uri::Scheme;
use poem::http::{HeaderValue, StatusCode, header};
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::metrics::Metrics;
use crate::config::ConnectionLimits;

/// What an HTTP/2 client with prior knowledge sends first. Past it, requests
/// are binary frames with no header terminator to watch for, so such a
/// connection is watched only until its preface is complete.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accepts connections from `inner` up to the cap, each as a [`GuardedIo`].
pub struct GuardedAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
}

impl<A> GuardedAcceptor<A> {
    pub fn new(inner: A, limits: ConnectionLimits, metrics: Arc<Metrics>) -> Self {
        GuardedAcceptor {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            metrics,
        }
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // Waiting for a slot before accepting leaves further clients in the
        // kernel's queue: they are served as soon as a connection ends.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the connection cap was closed"))?;
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let io = GuardedIo::new(io, slot, self.limits, self.metrics.clone());
        Ok((io, local, remote, scheme))
    }
}

/// Where a connection is, as far as its reads and writes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, against `header_timeout`.
    Head,
    /// Headers complete: the body and the answer are the endpoint's business
    /// ([`body_deadline`]), with no limit here.
    InRequest,
    /// Answered; waiting for the next request, against `keep_alive_timeout`.
    Idle,
    /// HTTP/2 with prior knowledge, past its preface: not watched.
    Http2,
}

/// A client socket with read deadlines while a request's headers are due
/// and between requests. Holds one of the acceptor's slots until dropped.
pub struct GuardedIo<T> {
    inner: T,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// The last byte read ended a line (CR aside): a line end now would be
    /// the blank line that ends the headers.
    at_line_start: bool,
    /// How much of the HTTP/2 preface the connection has matched so far;
    /// `None` once it cannot be HTTP/2.
    preface_matched: Option<usize>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
}

impl<T> GuardedIo<T> {
    fn new(
        inner: T,
        slot: OwnedSemaphorePermit,
        limits: ConnectionLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        GuardedIo {
            inner,
            phase: Phase::Head,
            deadline: Box::pin(tokio::time::sleep(limits.header_timeout)),
            at_line_start: false,
            preface_matched: Some(0),
            limits,
            metrics,
            _slot: slot,
        }
    }

    fn restart_clock(&mut self, after: Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    /// Follows the request through the bytes the server just read.
    fn saw_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.at_line_start = false;
            self.restart_clock(self.limits.header_timeout);
        }
        for &byte in bytes {
            if self.phase != Phase::Head {
                return;
            }
            if let Some(matched) = self.preface_matched {
                if H2_PREFACE[matched] == byte {
                    let matched = matched + 1;
                    self.preface_matched = Some(matched);
                    if matched == H2_PREFACE.len() {
                        self.phase = Phase::Http2;
                    }
                    continue;
                }
                self.preface_matched = None;
            }
            match byte {
                b'\n' if self.at_line_start => self.phase = Phase::InRequest,
                b'\n' => self.at_line_start = true,
                b'\r' => {}
                _ => self.at_line_start = false,
            }
        }
    }

    /// An answer (not a `100 Continue`) going out ends the request: from now
    /// on the connection is idle until the client's next byte.
    fn saw_write(&mut self, first_bytes: &[u8]) {
        let informational = first_bytes.starts_with(b"HTTP/1.1 1");
        if matches!(self.phase, Phase::InRequest | Phase::Idle) && !informational {
            self.phase = Phase::Idle;
            self.restart_clock(self.limits.keep_alive_timeout);
        }
    }

    /// Whether the phase's deadline has passed (registering the waker if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        matches!(self.phase, Phase::Head | Phase::Idle)
            && self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => {
                let what = if this.phase == Phase::Head {
                    this.metrics.stalled_client("header");
                    "the request's headers did not arrive in time"
                } else {
                    "the connection was idle too long"
                };
                tracing::debug!("closing a connection: {what}");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.saw_write(buf);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        self.saw_write(first);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes, and says so.
struct DeadlineBody<S> {
    inner: Pin<Box<S>>,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl<S: Stream<Item = io::Result<B>>, B> Stream for DeadlineBody<S> {
    type Item = io::Result<B>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                self.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                ))))
            }
            other => other,
        }
    }
}

fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The answer to a client whose body stalled: 408, and the connection closes.
fn body_timed_out() -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": "the request body did not arrive in time", "extensions": { "code": "INVALID_INPUT", "field": "request" } }]
    });
    let mut resp = Response::builder()
        .status(StatusCode::REQUEST_TIMEOUT)
        .content_type("application/json")
        .body(body.to_string());
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Gives the request's body `timeout` to arrive, from now (its headers are
/// in); a body that does not is answered 408 and its connection closed.
pub async fn body_deadline<E: Endpoint>(
    endpoint: E,
    mut req: Request,
    timeout: Duration,
    metrics: Arc<Metrics>,
) -> poem::Result<Response> {
    if !has_body(&req) {
        return endpoint.call(req).await.map(IntoResponse::into_response);
    }
    let expired = Arc::new(AtomicBool::new(false));
    let body = DeadlineBody {
        inner: Box::pin(req.take_body().into_bytes_stream()),
        deadline: Box::pin(tokio::time::sleep(timeout)),
        expired: expired.clone(),
    };
    req.set_body(Body::from_bytes_stream(body));
    let result = endpoint.call(req).await.map(IntoResponse::into_response);
    if expired.load(Ordering::Relaxed) {
        metrics.stalled_client("body");
        return Ok(body_timed_out());
    }
    result
}
