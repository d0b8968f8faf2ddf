//! The default HTTP client trusts what the POP3 connections trust: the
//! system store, so a root named by `SSL_CERT_FILE` (a company's own CA)
//! works for a token endpoint. Alone in its file, so that setting the
//! variable touches no other test.

use std::io::{Read, Write};
use std::time::Duration;

use pop3_oauth::HttpClient;

#[test]
fn a_root_the_system_store_holds_is_trusted_by_the_token_client() {
    let dir = std::env::temp_dir().join(format!("pop3-oauth-roots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let pki = test_support::TestPki::shared();
    pki.write_pem_files(&dir).expect("PEM files");
    // Set before any thread of this test binary reads the environment.
    std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem"));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = test_support::rustls_server_config(&pki.server);
    let server = std::thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(connection) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match tls.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return,
            }
        }
        let body = r#"{"access_token":"at-tls"}"#;
        let _ = write!(
            tls,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let answer = HttpClient::new()
        .expect("a client")
        .post_form(&format!("https://localhost:{port}/token"), &[]);
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(answer.map(|a| a.status).ok(), Some(200));
}
