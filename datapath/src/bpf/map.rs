//! BPF maps created with `BPF_MAP_CREATE` and updated from userspace. A [`Map`] owns its
//! file descriptor; the kernel frees the map when the last reference (this fd, or a
//! program that uses it) goes away. Keys and values are byte slices whose lengths are
//! checked against the map's sizes before any system call.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::sys::{self, MapCreateAttr, MapElemAttr};

/// Map types sluice uses (`enum bpf_map_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    Hash = 1,
    Array = 2,
    LpmTrie = 11,
    XskMap = 17,
}

/// `BPF_F_NO_PREALLOC`: required by LPM tries.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_ANY`: create or update.
const BPF_ANY: u64 = 0;

/// A BPF map.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

impl Map {
    /// Create a map named `name` (at most 15 characters are kept).
    pub fn create(map_type: MapType, name: &str, key_size: u32, value_size: u32, max_entries: u32) -> io::Result<Map> {
        let mut attr = MapCreateAttr {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_flags: if map_type == MapType::LpmTrie { BPF_F_NO_PREALLOC } else { 0 },
            map_name: sys::obj_name(name),
            ..MapCreateAttr::default()
        };
        // SAFETY: MAP_CREATE reads only the attribute itself; it holds no pointers.
        let fd = unsafe { sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr)? };
        Ok(Map { fd, map_type, key_size, value_size, max_entries })
    }

    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        let bad_value = value.is_some_and(|v| v.len() != self.value_size as usize);
        if key.len() != self.key_size as usize || bad_value {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "map key/value of {}/{} bytes, expected {}/{}",
                    key.len(),
                    value.map_or(0, <[u8]>::len),
                    self.key_size,
                    self.value_size
                ),
            ));
        }
        Ok(())
    }

    /// Insert or replace `key`.
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.check(key, Some(value))?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: BPF_ANY,
            ..MapElemAttr::default()
        };
        // SAFETY: `key` and `value` are live slices of exactly the map's key and value
        // sizes (checked above); the kernel only reads them.
        unsafe { sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)? };
        Ok(())
    }

    /// Remove `key`; `Ok(false)` when it was not present.
    pub fn delete(&self, key: &[u8]) -> io::Result<bool> {
        self.check(key, None)?;
        let mut attr =
            MapElemAttr { map_fd: self.fd.as_raw_fd() as u32, key: key.as_ptr() as u64, ..MapElemAttr::default() };
        // SAFETY: `key` is a live slice of the map's key size; the kernel only reads it.
        match unsafe { sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Copy the value of `key` into `value`; `Ok(false)` when it is not present.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
        self.check(key, Some(value))?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: `key` is readable and `value` writable for exactly the map's key and
        // value sizes (checked above) for the duration of the call.
        match unsafe { sys::bpf(sys::BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
