//! A keep-alive HTTP/1.1 connection per virtual user (hyper's low-level client), so the driver
//! measures the servers and not a connection pool.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Conn {
    pub async fn open(host: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(host).await.map_err(|e| format!("connect {host}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { host: host.to_string(), sender })
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = Request::builder().method(method).uri(path).header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(Duration::from_secs(60), self.sender.send_request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer { status, body })
    }
}

/// One request on a fresh connection, for seeding.
pub async fn once(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<Answer, String> {
    Conn::open(host).await?.send(method, path, headers, body).await
}
