//! xdp mode end to end, TCP: a tcp_proxy listener moves 8 MiB each way byte-exact
//! across the userspace stack, with a half-close in the middle (the client stops
//! sending first; the origin's echo of the tail still arrives, then its FIN).

use crate::xdp_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::payload;
use xdp_support::{bootstrap, listener, tcp_proxy, XdpNet};

const LEN: usize = 8 << 20;

/// Echo one connection until its FIN, then close.
fn echo_once(listener: TcpListener) -> std::io::Result<u64> {
    let (mut c, _) = listener.accept()?;
    c.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        c.write_all(&buf[..n])?;
        total += n as u64;
    }
    c.shutdown(Shutdown::Write)?;
    Ok(total)
}

#[test]
fn tcp_proxy_moves_8_mib_byte_exact_with_half_close() {
    if !testnet::require_root("tcp_proxy_moves_8_mib_byte_exact_with_half_close") {
        return;
    }
    let net = XdpNet::new(42, 1);
    let origin = net.in_peer(|| TcpListener::bind((net.peer_ip(), 0))).unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let echo = std::thread::spawn(move || echo_once(origin));
    let yaml = bootstrap(&listener("tcp", SocketAddr::from(([0, 0, 0, 0], 9000)), "", &tcp_proxy("tcp")), origin_addr);
    let _sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "skb"]);

    let data = payload(LEN, 7);
    let proxy_addr = SocketAddr::from((net.sluice_ip(), 9000));
    let back = net.in_peer(|| -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&proxy_addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(25)))?;
        let mut writer = stream.try_clone()?;
        std::thread::scope(|s| {
            let sender = s.spawn(|| -> std::io::Result<()> {
                writer.write_all(&data)?;
                // Half-close: no more data from us, but keep reading.
                writer.shutdown(Shutdown::Write)
            });
            let mut back = Vec::with_capacity(LEN);
            let read = stream.read_to_end(&mut back);
            sender.join().expect("sender")?;
            read?;
            Ok(back)
        })
    });
    let back = back.expect("transfer through sluice");
    assert_eq!(back.len(), LEN, "every byte came back");
    assert!(back == data, "byte-exact");
    assert_eq!(echo.join().unwrap().unwrap(), LEN as u64, "the origin saw every byte once");

    let stats = net.stats_until(Duration::from_secs(5), |s| {
        s.get("tcp.tcp.downstream_cx_rx_bytes_total") == LEN as i64
            && s.get("tcp.tcp.downstream_cx_tx_bytes_total") == LEN as i64
            && s.get("xdp.queue_0.rx_bytes") > 2 * LEN as i64
    });
    assert_eq!(stats.get("tcp.tcp.downstream_cx_rx_bytes_total"), LEN as i64, "{stats:?}");
    assert_eq!(stats.get("tcp.tcp.downstream_cx_tx_bytes_total"), LEN as i64, "{stats:?}");
    assert!(stats.get("xdp.queue_0.rx_bytes") > 2 * LEN as i64, "both directions crossed the queue: {stats:?}");
}
