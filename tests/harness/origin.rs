//! TCP origins for tests: a handler thread per connection, on either backend (see
//! [`crate::conn`]); stopped and joined on drop.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use crate::conn::{Acceptor, Conn, Listener};

/// A TCP origin running `handler` for every connection on its own thread.
pub struct TcpOrigin {
    pub addr: SocketAddr,
    acceptor: Acceptor,
}

impl TcpOrigin {
    /// An origin on a free loopback port.
    pub fn start(handler: impl Fn(Conn) + Send + Sync + 'static) -> TcpOrigin {
        TcpOrigin::serve(Listener::bind("127.0.0.1:0").unwrap(), handler)
    }

    /// An origin on `listener` (e.g. from `backend::Net::listen`).
    pub fn serve(listener: Listener, handler: impl Fn(Conn) + Send + Sync + 'static) -> TcpOrigin {
        let acceptor = Acceptor::start(listener, move |c, _| handler(c));
        TcpOrigin { addr: acceptor.addr, acceptor }
    }

    /// Echo everything until EOF, then close (half-close aware: echoes after the
    /// client's FIN too).
    pub fn echo() -> TcpOrigin {
        TcpOrigin::echo_on(Listener::bind("127.0.0.1:0").unwrap())
    }

    /// [`TcpOrigin::echo`] on `listener`.
    pub fn echo_on(listener: Listener) -> TcpOrigin {
        TcpOrigin::serve(listener, |mut c| {
            echo(&mut c);
            let _ = c.shutdown(Shutdown::Write);
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.acceptor.accepted()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Write back everything read from `c` until its end of stream or an error.
pub fn echo(c: &mut (impl Read + Write)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Send a line over `conn` (a connection through a proxy to an echo origin) and expect
/// it back: true when the proxy reached a live upstream, false when the connect failed
/// or the proxy closed the connection instead.
pub fn echoes(conn: io::Result<Conn>) -> bool {
    let Ok(mut s) = conn else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    if s.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut got = [0u8; 5];
    let ok = s.read_exact(&mut got).is_ok() && &got == b"ping\n";
    let _ = s.shutdown(Shutdown::Both);
    ok
}
