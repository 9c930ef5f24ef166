//! The kernel's ARP cache as a head start for the per-core stacks: when the host has
//! already resolved the gateway on the interface (it usually has), every core learns its
//! MAC address before the first upstream connection, instead of each core sending its own
//! ARP request. Read from `/proc/net/arp`, which shows the caller's network namespace.
//! A missing or incomplete entry is not an error: the stacks then resolve it themselves.

use std::net::Ipv4Addr;

/// `ATF_COM`: the entry is complete (resolved).
const ATF_COM: u32 = 0x2;

/// The MAC address the kernel has for `ip` on `device`, if resolved.
pub(crate) fn lookup(ip: Ipv4Addr, device: &str) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse(&table, ip, device)
}

/// Find a complete entry for `ip` on `device` in `/proc/net/arp` text.
fn parse(table: &str, ip: Ipv4Addr, device: &str) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        // IP address, HW type, Flags, HW address, Mask, Device
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0].parse::<Ipv4Addr>().ok()? != ip || f[5] != device {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        let mut mac = [0u8; 6];
        let mut parts = f[3].split(':');
        for b in &mut mac {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        (parts.next().is_none() && mac != [0; 6]).then_some(mac)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
10.99.40.1       0x1         0x2         0a:1b:2c:3d:4e:5f     *        sxm0
10.99.40.7       0x1         0x0         00:00:00:00:00:00     *        sxm0
10.99.40.1       0x1         0x2         aa:aa:aa:aa:aa:aa     *        eth9
";

    #[test]
    fn complete_entries_on_the_device_only() {
        let gw = Ipv4Addr::new(10, 99, 40, 1);
        assert_eq!(parse(TABLE, gw, "sxm0"), Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]));
        assert_eq!(parse(TABLE, gw, "eth9"), Some([0xaa; 6]));
        assert_eq!(parse(TABLE, Ipv4Addr::new(10, 99, 40, 7), "sxm0"), None, "incomplete");
        assert_eq!(parse(TABLE, gw, "sxm1"), None);
        assert_eq!(parse("garbage\n1 2 3\n10.99.40.1 0x1 0x2 zz:00 * sxm0", gw, "sxm0"), None);
    }
}
