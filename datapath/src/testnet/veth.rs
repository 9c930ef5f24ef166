//! veth pairs between namespaces, and the usual two-namespace test topology.

use std::io;

use super::netns::Netns;
use super::run;

/// A veth pair whose ends live in two namespaces; deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    a: String,
    a_ns: String,
    b: String,
}

impl VethPair {
    /// Create `a` in `a_ns` and `b` in `b_ns`, with `queues` rx and tx queues on each
    /// end, both up.
    pub fn new(a: &str, a_ns: &Netns, b: &str, b_ns: &Netns, queues: u32) -> io::Result<VethPair> {
        if a.len() > 15 || b.len() > 15 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface names are at most 15 bytes"));
        }
        let q = queues.max(1).to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                a,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                a_ns.name(),
                "type",
                "veth",
                "peer",
                "name",
                b,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                b_ns.name(),
            ],
        )?;
        let pair = VethPair { a: a.to_string(), a_ns: a_ns.name().to_string(), b: b.to_string() };
        a_ns.link_up(a)?;
        b_ns.link_up(b)?;
        Ok(pair)
    }

    pub fn a(&self) -> &str {
        &self.a
    }

    pub fn b(&self) -> &str {
        &self.b
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both. It may already be gone with its namespace.
        let _ = run("ip", &["-n", &self.a_ns, "link", "del", &self.a]);
    }
}

/// Two namespaces joined by a veth pair: `left` holds end `a` (`{prefix}0`), `right`
/// end `b` (`{prefix}1`). Namespaces are `{prefix}-l` and `{prefix}-r`.
#[derive(Debug)]
pub struct TwoHosts {
    // Field order is drop order: the pair before its namespaces.
    pub veth: VethPair,
    pub left: Netns,
    pub right: Netns,
}

impl TwoHosts {
    pub fn new(prefix: &str, queues: u32) -> io::Result<TwoHosts> {
        let left = Netns::new(&format!("{prefix}-l"))?;
        let right = Netns::new(&format!("{prefix}-r"))?;
        let veth = VethPair::new(&format!("{prefix}0"), &left, &format!("{prefix}1"), &right, queues)?;
        Ok(TwoHosts { veth, left, right })
    }
}
