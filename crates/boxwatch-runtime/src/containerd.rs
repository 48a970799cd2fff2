//! containerd's gRPC API: `Namespaces/List` to find the namespaces to search (unless the caller
//! knows it, e.g. from a `/<ns>/<id>` cgroup path), then `Containers/Get` with the
//! `containerd-namespace` header. One HTTP/2 connection per socket is kept and shared by all
//! lookups (streams are multiplexed); it is re-established when containerd restarts.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::sync::Mutex;

use crate::error::LookupError;
use crate::grpc::{self, CallError};
use crate::meta::{self, Metadata};
use crate::proto;

const LIST_NAMESPACES: &str = "/containerd.services.namespaces.v1.Namespaces/List";
const GET_CONTAINER: &str = "/containerd.services.containers.v1.Containers/Get";

/// gRPC NOT_FOUND.
const NOT_FOUND: u32 = 5;

/// A containerd socket and its (lazily opened) connection.
#[derive(Debug)]
pub(crate) struct Containerd {
    socket: PathBuf,
    conn: Mutex<Option<SendRequest<Bytes>>>,
}

/// The outcome of a lookup that reached containerd.
#[derive(Debug)]
pub(crate) enum Found {
    Yes(Box<Metadata>),
    /// Not in any of these namespaces.
    No(Vec<String>),
}

impl Containerd {
    pub(crate) fn new(socket: PathBuf) -> Self {
        Containerd { socket, conn: Mutex::new(None) }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The cached connection, or a new one; `bool` says whether it was cached.
    async fn channel(&self) -> Result<(SendRequest<Bytes>, bool), LookupError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok((c.clone(), true));
        }
        let c = grpc::connect(&self.socket).await?;
        *conn = Some(c.clone());
        Ok((c, false))
    }

    async fn call(
        &self,
        method: &'static str,
        namespace: Option<&str>,
        message: &[u8],
    ) -> Result<Bytes, LookupError> {
        let short = method.rsplit('.').next().unwrap_or(method);
        loop {
            let (send, cached) = self.channel().await?;
            match grpc::unary(&send, method, namespace, message).await {
                Ok(answer) => return Ok(answer),
                Err(CallError::Transport(e)) => {
                    // The connection is dead (containerd restarted?): forget it, and if it was an
                    // old one, try once more on a fresh one.
                    *self.conn.lock().await = None;
                    if !cached {
                        return Err(LookupError::Connect {
                            socket: self.socket.clone(),
                            reason: format!("{short}: {e}"),
                        });
                    }
                }
                Err(CallError::Status { code, message }) => {
                    return Err(LookupError::Rpc {
                        socket: self.socket.clone(),
                        method: short,
                        code,
                        message,
                    });
                }
                Err(CallError::Protocol(detail)) => {
                    return Err(LookupError::Protocol {
                        socket: self.socket.clone(),
                        detail: format!("{short}: {detail}"),
                    });
                }
            }
        }
    }

    /// Every namespace, in containerd's order.
    pub(crate) async fn namespaces(&self) -> Result<Vec<String>, LookupError> {
        // ListNamespacesRequest { string filter = 1; }: empty = all.
        let answer = self.call(LIST_NAMESPACES, None, &[]).await?;
        proto::decode_namespaces(&answer).map_err(|e| LookupError::Protocol {
            socket: self.socket.clone(),
            detail: format!("Namespaces/List: {}", e.0),
        })
    }

    /// Looks `id` up in `namespace`, or in every namespace if `None`.
    pub(crate) async fn lookup(&self, id: &str, namespace: Option<&str>) -> Result<Found, LookupError> {
        let namespaces = match namespace {
            Some(ns) => vec![ns.to_string()],
            None => self.namespaces().await?,
        };
        let request = proto::get_container_request(id);
        for ns in &namespaces {
            match self.call(GET_CONTAINER, Some(ns), &request).await {
                Ok(answer) => {
                    let c =
                        proto::decode_get_container_response(&answer).map_err(|e| LookupError::Protocol {
                            socket: self.socket.clone(),
                            detail: format!("Containers/Get: {}", e.0),
                        })?;
                    return Ok(Found::Yes(Box::new(meta::from_containerd(c, ns))));
                }
                Err(LookupError::Rpc { code: NOT_FOUND, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Found::No(namespaces))
    }
}
