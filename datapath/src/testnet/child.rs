//! A child process that is killed (SIGKILL, by its PID) and reaped when the guard drops.

use std::io;
use std::process::{Child, ExitStatus};

/// Owns a spawned child process.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, e.g. to read its stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Send SIGKILL and reap.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        let child = self.child_mut();
        child.kill()?;
        child.wait()
    }

    /// Wait for the child to exit on its own.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child_mut().wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
