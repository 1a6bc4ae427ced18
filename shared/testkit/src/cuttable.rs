//! A TCP forwarder to the emulator that a test can cut off, as when AWS becomes unreachable for a
//! while: every connection, open or new, is dropped at once, so the SDK (after its own retries)
//! reports a dispatch failure, which lockreaper classifies as transient. Restored, it forwards
//! again. Functions under test get its URL as `AWS_ENDPOINT_URL` instead of the emulator's.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct CuttableEndpoint {
    url: String,
    cut: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableEndpoint {
    /// Forwards a new local port to `upstream` (`http://127.0.0.1:<port>`).
    pub async fn to(upstream: &str) -> CuttableEndpoint {
        let target = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a local port");
        let port = listener.local_addr().expect("local address").port();
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let sender = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_now = sender.subscribe();
                if *cut_now.borrow() {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_now.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CuttableEndpoint {
            url: format!("http://127.0.0.1:{port}"),
            cut,
            task,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on every connection is dropped, including those already open.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CuttableEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
