//! The server under test: its address, its URL scheme (hookpipe or nchan),
//! channel creation, and the lean HTTP/1.1 connection publishers use.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::args::{Target, Transport};
use crate::protocol::NewChannel;

/// How long connecting or one management request may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One channel under test; `token` authorizes subscribers (hookpipe only).
#[derive(Debug, Clone)]
pub struct Channel {
    /// The channel id.
    pub id: String,
    /// The subscribe token, if the target has one.
    pub token: Option<String>,
}

/// Where the server under test listens and how it names things.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as given, without a trailing `/`.
    pub url: String,
    /// `host:port`, for connecting and for the `Host` header.
    pub authority: String,
    /// Path prefix before the server's own paths (usually empty).
    base: String,
    /// Which contract the server speaks.
    pub target: Target,
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]`.
    pub fn parse(url: &str, target: Target) -> anyhow::Result<Self> {
        let url = url.trim().trim_end_matches('/');
        let uri: Uri = url.parse().with_context(|| {
            format!("--url '{url}' is not a URL; use e.g. http://127.0.0.1:8080")
        })?;
        if uri.scheme_str() != Some("http") {
            bail!("--url '{url}' must start with http:// (bench speaks plain HTTP/1.1)");
        }
        if uri.query().is_some() {
            bail!("--url '{url}' must not have a query string");
        }
        let host = uri.host().context("--url has no host")?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        Ok(Endpoint {
            url: url.to_owned(),
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
            target,
        })
    }

    /// Fails with a clear message unless something accepts connections there.
    pub async fn probe(&self) -> anyhow::Result<()> {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => bail!("cannot reach the relay at {}: {e}", self.url),
            Err(_) => bail!(
                "cannot reach the relay at {}: no answer within {CONNECT_TIMEOUT:?}",
                self.url
            ),
        }
    }

    /// Creates `n` channels: `POST /new` on hookpipe, made-up ids on nchan.
    pub async fn create_channels(&self, n: u64, run: u32) -> anyhow::Result<Vec<Channel>> {
        if self.target == Target::Nchan {
            return Ok((0..n)
                .map(|i| Channel {
                    id: format!("hpb-{run:08x}-{i}"),
                    token: None,
                })
                .collect());
        }
        let mut conn = Http1::connect(&self.authority)
            .await
            .with_context(|| format!("cannot reach the relay at {}", self.url))?;
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let req = self.request("POST", &format!("{}/new", self.base), Bytes::new());
            let (status, body) = tokio::time::timeout(CONNECT_TIMEOUT, conn.send(req))
                .await
                .map_err(|_| anyhow::anyhow!("POST {}/new did not answer", self.url))?
                .with_context(|| format!("cannot reach the relay at {}", self.url))?;
            if status != 201 {
                bail!(
                    "POST {}/new answered {status}: {}; is this a hookpipe relay? (for nginx+nchan use --target nchan)",
                    self.url,
                    String::from_utf8_lossy(&body)
                );
            }
            let created: NewChannel = serde_json::from_slice(&body)
                .with_context(|| format!("POST {}/new did not return a channel", self.url))?;
            out.push(Channel {
                id: created.channel,
                token: Some(created.token),
            });
        }
        Ok(out)
    }

    /// The path publishers POST to for `channel`.
    pub fn publish_path(&self, channel: &Channel) -> String {
        match self.target {
            Target::Hookpipe => format!("{}/{}", self.base, channel.id),
            Target::Nchan => format!("{}/pub?id={}", self.base, channel.id),
        }
    }

    /// The URL subscribers connect to for `channel`.
    pub fn subscribe_url(&self, channel: &Channel, transport: Transport) -> String {
        let (scheme, path) = match (self.target, transport) {
            (Target::Nchan, _) => ("ws", format!("{}/sub?id={}", self.base, channel.id)),
            (Target::Hookpipe, Transport::Ws) => ("ws", format!("{}/{}", self.base, channel.id)),
            (Target::Hookpipe, Transport::Sse) => (
                "http",
                format!("{}/{}?format=hookpipe", self.base, channel.id),
            ),
        };
        format!("{scheme}://{}{path}", self.authority)
    }

    /// A request to `path` on this server with `body`.
    pub fn request(&self, method: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "text/plain")
            .body(Full::new(body))
            .expect("method, path and host are valid")
    }
}

/// One keep-alive HTTP/1.1 connection; its driver task ends when it is dropped.
pub struct Http1 {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Http1 {
    /// Connects (with Nagle off: requests are small and back to back).
    pub async fn connect(authority: &str) -> std::io::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Http1 { sender, driver })
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the connection can take a request; an error means nothing was sent.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        self.sender.ready().await
    }

    /// Sends `req` and reads the whole answer.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> hyper::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends `req` and returns the response head, leaving the body to stream.
    pub async fn open(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }
}

impl Drop for Http1 {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
