//! Running the router: bound early (a bad address fails before the daemon says ready), served
//! on its own thread with a current-thread Tokio runtime. Every connection is its own task, so
//! an idle or slow client never delays another request; blocking work (history queries) goes to
//! Tokio's blocking pool.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("bind HTTP endpoint {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("start HTTP server: {0}")]
    Start(std::io::Error),
}

/// Bind `addr` (port 0: any free port; see [`std::net::TcpListener::local_addr`]).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    l.set_nonblocking(true).map_err(|source| ServerError::Bind { addr, source })?;
    Ok(l)
}

/// The running server; [`Server::stop`] (or drop) stops it and joins its thread.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `app` on `listener` from a new thread named `boxwatch-http`.
    pub fn spawn(listener: std::net::TcpListener, app: Router) -> Result<Server, ServerError> {
        let addr = listener.local_addr().map_err(ServerError::Start)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("boxwatch-http")
            .max_blocking_threads(4)
            .build()
            .map_err(ServerError::Start)?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("boxwatch-http".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("HTTP endpoint {addr}: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        r = axum::serve(listener, app) => {
                            if let Err(e) = r {
                                tracing::error!("HTTP endpoint {addr} stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Open connections (idle keep-alive clients) do not hold up shutdown.
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(ServerError::Start)?;
        Ok(Server { addr, stop: Some(tx), thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, drop open connections, join the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
