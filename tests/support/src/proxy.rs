//! A TCP forwarder on loopback that a test can cut and restore ([`FaultProxy`]): a
//! dependency (moto's KMS, Redis) that goes away and comes back on the same address with its
//! state intact, as a network partition or a dependency restarted behind a stable address
//! looks to the gateway. Killing moto itself would lose its keys, so a test of "the KMS came
//! back" needs the cut to be in front of it.
//!
//! While cut, the port refuses connections (nothing listens on it) and every connection that
//! was open is shut down both ways, so a pooled connection fails as it would against a dead
//! peer. Plain threads and blocking sockets: no runtime, usable from any test.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Forwards `127.0.0.1:PORT` to a target until cut; see the module docs.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    target: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl FaultProxy {
    /// Starts forwarding a free port of 127.0.0.1 to `target` (`HOST:PORT` or a URL's
    /// authority such as `127.0.0.1:4566`).
    pub fn start(target: &str) -> FaultProxy {
        let target: SocketAddr = target.parse().unwrap_or_else(|e| panic!("{target}: not HOST:PORT: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy's port");
        let address = listener.local_addr().expect("the proxy's address");
        let mut proxy = FaultProxy { address, target, open: Arc::default(), running: None };
        proxy.serve(listener);
        proxy
    }

    /// Where clients connect, as `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// `http://127.0.0.1:PORT`, for HTTP dependencies.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops listening (connecting is refused) and shuts every open connection down.
    pub fn cut(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag and drops the listener.
            let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
            let _ = thread.join();
        }
        for stream in self.open.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens on the same port again and forwards new connections.
    pub fn restore(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = TcpListener::bind(self.address).expect("binding the proxy's port again");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, open, target) = (stop.clone(), self.open.clone(), self.target);
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { continue };
                {
                    let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
                    open.extend(client.try_clone());
                    open.extend(upstream.try_clone());
                }
                std::thread::spawn(move || pump(client, upstream));
                std::thread::spawn(move || pump(upstream2, client2));
            }
        });
        self.running = Some((stop, thread));
    }
}

/// Copies `from` to `to` until either side ends, then shuts both down.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = (from.shutdown(Shutdown::Both), to.shutdown(Shutdown::Both));
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
