//! The nftables ruleset generation id, read over netlink.
//!
//! The kernel keeps one generation counter per network namespace for all
//! of nftables, and bumps it at every committed transaction (batch), in
//! any table and by any program. Reading it is one small netlink round
//! trip (`NFT_MSG_GETGEN` on a `NETLINK_NETFILTER` socket, answered by an
//! `NFT_MSG_NEWGEN` message whose `NFTA_GEN_ID` attribute is the id), so
//! the agent can tell "nothing committed since I last looked" without
//! listing its table.
//!
//! The socket belongs to the network namespace of the thread that opens
//! it. The message layouts are those of `linux/netlink.h`,
//! `linux/netfilter/nfnetlink.h` and `linux/netfilter/nf_tables.h`:
//! header fields in host byte order, the nfgenmsg's resource id and the
//! generation id in network byte order.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `NFNL_SUBSYS_NFTABLES` (`linux/netfilter/nfnetlink.h`).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN` (`enum nf_tables_msg_types`): the reply.
const NFT_MSG_NEWGEN: u16 = 15;
/// `NFT_MSG_GETGEN`: the request.
const NFT_MSG_GETGEN: u16 = 16;
/// `NFTA_GEN_ID` (`enum nft_gen_attributes`), a big-endian u32.
const NFTA_GEN_ID: u16 = 1;
/// `NLMSG_ERROR` (`linux/netlink.h`).
const NLMSG_ERROR: u16 = 2;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// The attribute type bits (`NLA_TYPE_MASK`: without `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nfgenmsg)`.
const NFGENMSG_LEN: usize = 4;
/// The length of a `GETGEN` request: a header and an nfgenmsg.
pub const REQUEST_LEN: usize = NLMSG_HDRLEN + NFGENMSG_LEN;

/// The netlink message type of a nf_tables message.
const fn message_type(message: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | message
}

/// Rounds up to netlink's 4-byte alignment (`NLMSG_ALIGN`, `NLA_ALIGN`).
const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Encodes an `NFT_MSG_GETGEN` request with sequence number `seq`:
/// `struct nlmsghdr` then `struct nfgenmsg` (family `AF_UNSPEC`, version
/// `NFNETLINK_V0`, resource id 0), no attributes. The port id is 0: the
/// kernel fills in the socket's.
pub fn encode_request(seq: u32) -> [u8; REQUEST_LEN] {
    let mut message = [0u8; REQUEST_LEN];
    message[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    message[4..6].copy_from_slice(&message_type(NFT_MSG_GETGEN).to_ne_bytes());
    message[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid (12..16), nfgen_family, version and res_id stay 0.
    message
}

/// One netlink message of a reply, as far as a generation request cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `NFT_MSG_NEWGEN` with the generation id.
    Generation {
        /// The message's sequence number.
        seq: u32,
        /// `NFTA_GEN_ID`.
        id: u32,
    },
    /// `NLMSG_ERROR`: `errno` is positive (0 is an acknowledgement).
    Error {
        /// The sequence number of the request it answers.
        seq: u32,
        /// The error number, positive.
        errno: i32,
    },
    /// Any other message type.
    Other {
        /// `nlmsg_type`.
        kind: u16,
        /// The sequence number.
        seq: u32,
    },
}

/// Why a reply could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A header or attribute runs past the end of the buffer, or its
    /// length is smaller than a header.
    Truncated,
    /// An `NFT_MSG_NEWGEN` message without an `NFTA_GEN_ID` attribute.
    MissingId,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated netlink message"),
            DecodeError::MissingId => f.write_str("NFT_MSG_NEWGEN without NFTA_GEN_ID"),
        }
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes the netlink messages in one datagram.
pub fn decode(buf: &[u8]) -> Result<Vec<Reply>, DecodeError> {
    let mut replies = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let len = u32_at(buf, at).ok_or(DecodeError::Truncated)? as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(DecodeError::Truncated);
        }
        let message = &buf[at..at + len];
        let kind = u16_at(message, 4).ok_or(DecodeError::Truncated)?;
        let seq = u32_at(message, 8).ok_or(DecodeError::Truncated)?;
        let payload = &message[NLMSG_HDRLEN..];
        replies.push(match kind {
            NLMSG_ERROR => {
                // struct nlmsgerr: int error, then the request's header.
                let error = u32_at(payload, 0).ok_or(DecodeError::Truncated)? as i32;
                Reply::Error { seq, errno: -error }
            }
            kind if kind == message_type(NFT_MSG_NEWGEN) => {
                let attributes = payload.get(NFGENMSG_LEN..).ok_or(DecodeError::Truncated)?;
                Reply::Generation {
                    seq,
                    id: generation_id(attributes)?,
                }
            }
            kind => Reply::Other { kind, seq },
        });
        at += align(len);
    }
    Ok(replies)
}

/// The `NFTA_GEN_ID` attribute among `attributes` (`struct nlattr`s).
fn generation_id(attributes: &[u8]) -> Result<u32, DecodeError> {
    let mut at = 0;
    while at + 4 <= attributes.len() {
        let len = u16_at(attributes, at).ok_or(DecodeError::Truncated)? as usize;
        let kind = u16_at(attributes, at + 2).ok_or(DecodeError::Truncated)? & NLA_TYPE_MASK;
        if len < 4 || at + len > attributes.len() {
            return Err(DecodeError::Truncated);
        }
        if kind == NFTA_GEN_ID {
            let value = attributes
                .get(at + 4..at + 8)
                .filter(|_| len >= 8)
                .ok_or(DecodeError::Truncated)?;
            return Ok(u32::from_be_bytes(value.try_into().expect("4 bytes")));
        }
        at += align(len);
    }
    Err(DecodeError::MissingId)
}

/// A `NETLINK_NETFILTER` socket that reads the generation id.
#[derive(Debug)]
pub struct GenerationSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// How long a read waits for the kernel's answer.
const TIMEOUT: Duration = Duration::from_secs(2);

impl GenerationSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: `timeout` outlives the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(GenerationSocket {
            fd,
            seq: 0,
            buf: vec![0; 8192],
        })
    }

    /// Asks the kernel for the current generation id.
    pub fn read(&mut self) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let request = encode_request(seq);
        // SAFETY: an all-zero sockaddr_nl is valid; the fields are set below.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `request` and `kernel` outlive the call; sizes are passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&raw const kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let received = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if received < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            let replies = decode(&self.buf[..received as usize])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            // Answers to earlier requests (one that timed out) are skipped.
            for reply in replies {
                match reply {
                    Reply::Generation { seq: s, id } if s == seq => return Ok(id),
                    Reply::Error { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `NFT_MSG_NEWGEN` message as the kernel builds it
    /// (`nf_tables_fill_gen_info`): id, pid and process name attributes.
    fn newgen(seq: u32, id: u32) -> Vec<u8> {
        let mut attributes = Vec::new();
        let mut attribute = |kind: u16, value: &[u8]| {
            attributes.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            attributes.extend_from_slice(&kind.to_ne_bytes());
            attributes.extend_from_slice(value);
            attributes.resize(align(attributes.len()), 0);
        };
        // NFTA_GEN_PROC_PID and NFTA_GEN_PROC_NAME ("nft\0") first, so the
        // decoder has to walk past them; NLA_F_NET_BYTEORDER on the id.
        attribute(2, &4242u32.to_be_bytes());
        attribute(3, b"nft\0\0");
        attribute(1 | 0x4000, &id.to_be_bytes());
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + attributes.len();
        let mut message = Vec::new();
        message.extend_from_slice(&(len as u32).to_ne_bytes());
        message.extend_from_slice(&message_type(NFT_MSG_NEWGEN).to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&seq.to_ne_bytes());
        message.extend_from_slice(&77u32.to_ne_bytes());
        message.extend_from_slice(&[0, 0, 0x12, 0x34]); // nfgenmsg, res_id = gen id's low bits
        message.extend_from_slice(&attributes);
        message
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&36u32.to_ne_bytes());
        message.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&seq.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&(-errno).to_ne_bytes());
        message.extend_from_slice(&encode_request(seq)[..16]);
        message
    }

    #[test]
    fn the_request_is_a_getgen_header_and_an_empty_nfgenmsg() {
        let request = encode_request(0x0102_0304);
        assert_eq!(request.len(), 20);
        assert_eq!(u32_at(&request, 0), Some(20), "nlmsg_len");
        assert_eq!(
            u16_at(&request, 4),
            Some(0x0a10),
            "NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN"
        );
        assert_eq!(u16_at(&request, 6), Some(1), "NLM_F_REQUEST only");
        assert_eq!(u32_at(&request, 8), Some(0x0102_0304), "nlmsg_seq");
        assert_eq!(u32_at(&request, 12), Some(0), "nlmsg_pid");
        assert_eq!(
            &request[16..],
            &[0, 0, 0, 0],
            "AF_UNSPEC, NFNETLINK_V0, res_id 0"
        );
    }

    #[test]
    fn a_newgen_reply_yields_its_big_endian_id() {
        let message = newgen(7, 0xdead_beef);
        assert_eq!(message.len() % 4, 0);
        assert_eq!(
            decode(&message),
            Ok(vec![Reply::Generation {
                seq: 7,
                id: 0xdead_beef
            }])
        );
    }

    #[test]
    fn several_messages_in_one_datagram_are_all_decoded() {
        let mut datagram = error(3, libc::EPERM);
        datagram.extend(newgen(4, 12));
        datagram.extend(error(4, 0));
        assert_eq!(
            decode(&datagram),
            Ok(vec![
                Reply::Error {
                    seq: 3,
                    errno: libc::EPERM
                },
                Reply::Generation { seq: 4, id: 12 },
                Reply::Error { seq: 4, errno: 0 },
            ])
        );
        let mut other = encode_request(9).to_vec();
        other[4..6].copy_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
        assert_eq!(decode(&other), Ok(vec![Reply::Other { kind: 3, seq: 9 }]));
    }

    #[test]
    fn truncated_or_incomplete_replies_are_refused() {
        let message = newgen(1, 5);
        for cut in [3, 15, 20, message.len() - 1] {
            assert_eq!(
                decode(&message[..cut]),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        // A header that claims less than itself.
        let mut short = message.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(decode(&short), Err(DecodeError::Truncated));
        // NEWGEN with only the pid attribute.
        let mut without_id = message[..NLMSG_HDRLEN + NFGENMSG_LEN + 8].to_vec();
        let len = without_id.len() as u32;
        without_id[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(decode(&without_id), Err(DecodeError::MissingId));
        // An id attribute too short for a u32.
        let mut short_id = message[..NLMSG_HDRLEN + NFGENMSG_LEN].to_vec();
        short_id.extend_from_slice(&6u16.to_ne_bytes());
        short_id.extend_from_slice(&NFTA_GEN_ID.to_ne_bytes());
        short_id.extend_from_slice(&[1, 2, 0, 0]);
        let len = short_id.len() as u32;
        short_id[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(decode(&short_id), Err(DecodeError::Truncated));
    }

    fn is_root() -> bool {
        // SAFETY: no arguments, no side effects.
        unsafe { libc::geteuid() == 0 }
    }

    fn nft(script: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write");
        assert!(child.wait().expect("nft").success(), "nft -f: {script}");
    }

    /// In the kernel (root, `nft`): a committed transaction moves the id,
    /// reading and listing do not. Runs in a network namespace of its own,
    /// on a thread of its own, so it touches nothing else.
    #[test]
    fn the_kernel_id_moves_with_each_nft_transaction_only() {
        let has_nft = std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !is_root() || !has_nft {
            // CI (NETPOL_REQUIRE_E2E=1) must see a missing capability as a
            // failure, never as a silent pass.
            assert!(
                std::env::var("NETPOL_REQUIRE_E2E").as_deref() != Ok("1"),
                "needs root and nft, and NETPOL_REQUIRE_E2E=1 is set"
            );
            eprintln!("skipped: needs root and nft");
            return;
        }
        std::thread::spawn(|| {
            // SAFETY: affects only this thread (and the processes it starts).
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            let mut socket = GenerationSocket::open().expect("netlink socket");
            let first = socket.read().expect("generation");
            assert_eq!(
                socket.read().expect("generation"),
                first,
                "reading moved it"
            );
            nft("add table inet drift_test\n");
            let second = socket.read().expect("generation");
            assert_ne!(second, first, "a transaction did not move it");
            let listed = std::process::Command::new("nft")
                .args(["list", "ruleset"])
                .output()
                .expect("nft list");
            assert!(listed.status.success());
            assert_eq!(
                socket.read().expect("generation"),
                second,
                "listing moved it"
            );
            // One transaction of several commands moves it once... or more:
            // only "changed or not" matters to the agent.
            nft("add chain inet drift_test c\nadd rule inet drift_test c accept\n");
            let third = socket.read().expect("generation");
            assert_ne!(third, second);
            nft("delete table inet drift_test\n");
            assert_ne!(socket.read().expect("generation"), third);
        })
        .join()
        .expect("the kernel test thread");
    }
}
