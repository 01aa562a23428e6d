//! The SDK's errors keep their causes, typed: a caller can walk `std::error::Error::source`
//! from a `sealgate_client::Error` down to the `std::io::Error` and the `rustls::Error` that
//! really happened, instead of parsing a flattened string. Servers here are plain sockets on
//! 127.0.0.1 that refuse, speak something other than TLS, or stay silent.

use std::error::Error as _;
use std::time::Duration;

use sealgate_client::{Client, Error, Report};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn client(port: u16) -> Client {
    // Any certificate will do: these servers never get as far as presenting one.
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate").cert.pem();
    Client::builder(format!("https://127.0.0.1:{port}"))
        .ca_certificate_pem(ca.as_bytes())
        .timeout(Duration::from_millis(500))
        .connect_retries(0)
        .build()
        .expect("a valid configuration")
}

/// The first error of type `T` in the source chain of `e`, looking inside `io::Error`s too
/// (which carry the TLS library's error as their payload, not as their source, sometimes
/// one `io::Error` inside another).
fn find<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        let payload = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        next = match payload {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

#[tokio::test]
async fn a_refused_connection_keeps_the_io_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let e = client(port).models().await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let io = find::<std::io::Error>(&e).unwrap_or_else(|| panic!("no io::Error in {}", Report(&e)));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(e.source().and_then(|s| s.downcast_ref::<reqwest::Error>()).is_some(), "the first cause is reqwest's");
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_keeps_the_rustls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        let _ = socket.shutdown().await;
    });
    let e = client(port).models().await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let tls = find::<rustls::Error>(&e).unwrap_or_else(|| panic!("no rustls::Error in {}", Report(&e)));
    assert!(matches!(tls, rustls::Error::InvalidMessage(_)), "{tls:?}");
    // The report names every step, and the top-level text stays short.
    assert_eq!(e.to_string(), "cannot reach the gateway");
    assert!(Report(&e).to_string().len() > e.to_string().len());
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_with_its_cause() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(socket);
    });
    let e = client(port).models().await.unwrap_err();
    server.abort();
    let Error::Timeout(cause) = &e else { panic!("expected a timeout, got {e:?}") };
    assert!(cause.is_timeout());
    assert!(e.source().is_some_and(|s| s.downcast_ref::<reqwest::Error>().is_some()));
}

#[test]
fn configuration_errors_keep_theirs() {
    let e = Client::builder("not a url").build().unwrap_err();
    assert!(e.source().and_then(|s| s.downcast_ref::<url::ParseError>()).is_some(), "{e:?}");
    let e = Client::builder("https://127.0.0.1:1").ca_certificate_file("/nonexistent/ca.pem").unwrap_err();
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the I/O error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let e = Client::builder("https://127.0.0.1:1").ca_certificate_pem(b"-----BEGIN CERTIFICATE-----\n!!\n").build();
    assert!(matches!(e, Err(Error::InvalidCaCertificate { cause: Some(_), .. })), "{e:?}");
}
