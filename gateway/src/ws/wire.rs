//! The connection's bytes. tungstenite parses what the client sends (masking, fragments, UTF-8,
//! size limits); what the server sends is framed here, straight from each frame's shared bytes:
//! the queued frames of a batch go out in one vectored write, nothing is copied into a write
//! buffer, and nothing is kept once written, so an idle connection holds no write buffer
//! (tungstenite's keeps the capacity of the largest batch or `joined` frame it ever wrote).
//!
//! The upgraded connection is taken back from hyper as the TCP socket it is, and split into
//! owned halves: no lock between the halves, no dynamic dispatch per read or write, and
//! writes go out with `sendmsg`, which skips the file-layer work `writev` does per call.

use bytes::{Buf, Bytes};
use smallvec::SmallVec;
use socket2::SockRef;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite;

use aurora_core::protocol::close;

use crate::server::{Seat, ServedIo};

const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Most slices handed to one `writev` (a header and a payload per frame).
const MAX_SLICES: usize = 128;
/// Frames queued inline: a batch at low rates holds one or two, and an idle connection then
/// keeps no queue allocation (a larger batch spills to the heap, freed once written).
const INLINE_QUEUED: usize = 2;

/// One server frame: its header and the shared payload (never masked: RFC 6455 §5.1).
struct Out {
    head: [u8; 10],
    head_len: u8,
    body: Bytes,
}

impl Out {
    fn new(opcode: u8, body: Bytes) -> Out {
        let (head, head_len) = header(opcode, body.len());
        Out { head, head_len, body }
    }

    /// A frame serialized with its header by [`text_frame`].
    fn framed(frame: Bytes) -> Out {
        Out { head: [0; 10], head_len: 0, body: frame }
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }
}

/// A frame's header (server frames are never masked).
fn header(opcode: u8, len: usize) -> ([u8; 10], u8) {
    let mut head = [0u8; 10];
    head[0] = FIN | opcode;
    let head_len = if len < 126 {
        head[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, head_len)
}

/// `payload` (UTF-8) as a whole text frame, header included, for [`Writer::framed`]: a
/// broadcast is framed once for all its recipients, and a batch's `writev` then hands the
/// kernel one slice per frame instead of two (a tiny header slice costs the kernel's copy
/// about as much as the payload's).
pub(crate) fn text_frame(payload: &[u8]) -> Bytes {
    let (head, head_len) = header(OP_TEXT, payload.len());
    let mut frame = Vec::with_capacity(usize::from(head_len) + payload.len());
    frame.extend_from_slice(&head[..usize::from(head_len)]);
    frame.extend_from_slice(payload);
    frame.into()
}

/// The socket's write half; vectored writes are one `sendmsg`.
pub(super) struct TcpWrite(OwnedWriteHalf);

impl AsyncWrite for TcpWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp = self.0.as_ref();
        // Written straight away while the socket is known writable (`try_io` checks the cached
        // readiness); only a full socket waits for readiness, which registers the waker.
        loop {
            match tcp.try_io(Interest::WRITABLE, || SockRef::from(tcp).send_vectored(bufs)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(tcp.poll_write_ready(cx))?,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The write half: frames are queued, then written together by [`Writer::poll_flush`].
pub(super) struct Writer<W = TcpWrite> {
    io: W,
    queue: SmallVec<[Out; INLINE_QUEUED]>,
    /// Frames of `queue` already written, and bytes written of the next one.
    done: usize,
    partial: usize,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Writer<W> {
        Writer { io, queue: SmallVec::new(), done: 0, partial: 0 }
    }

    /// Queues a text frame; `frame` must be UTF-8 (every frame is serialized JSON).
    pub fn text(&mut self, frame: Bytes) {
        self.queue.push(Out::new(OP_TEXT, frame));
    }

    /// Queues a frame made by [`text_frame`].
    pub fn framed(&mut self, frame: Bytes) {
        self.queue.push(Out::framed(frame));
    }

    pub fn ping(&mut self) {
        self.queue.push(Out::new(OP_PING, Bytes::new()));
    }

    pub fn pong(&mut self, payload: Bytes) {
        self.queue.push(Out::new(OP_PONG, payload));
    }

    pub fn close(&mut self, code: u16, reason: &str) {
        let mut body = Vec::with_capacity(2 + reason.len());
        body.extend_from_slice(&code.to_be_bytes());
        body.extend_from_slice(reason.as_bytes());
        self.queue.push(Out::new(OP_CLOSE, body.into()));
    }

    /// Writes every queued frame; `Pending` while the socket cannot take more.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.done < self.queue.len() {
            // A small batch fills a small slice array (each is zeroed per write).
            let written = if self.queue.len() - self.done <= INLINE_QUEUED {
                ready!(self.poll_write_some::<{ 2 * INLINE_QUEUED }>(cx))?
            } else {
                ready!(self.poll_write_some::<MAX_SLICES>(cx))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        (self.done, self.partial) = (0, 0);
        if self.queue.spilled() {
            self.queue = SmallVec::new();
        } else {
            self.queue.clear();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// One vectored write of the unwritten frames, at most `N` slices (two per frame).
    fn poll_write_some<const N: usize>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); N];
        let mut n = 0;
        let mut skip = self.partial;
        for out in &self.queue[self.done..] {
            if n + 2 > N {
                break;
            }
            for part in [&out.head[..usize::from(out.head_len)], &out.body[..]] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
    }

    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let rest = self.queue[self.done].len() - self.partial;
            if written < rest {
                self.partial += written;
                return;
            }
            written -= rest;
            self.done += 1;
            self.partial = 0;
        }
    }
}

/// The read half as tungstenite's stream. tungstenite answers pings and closes by writing to
/// its stream; those writes are dropped here, and the session answers on the [`Writer`]
/// between whole frames instead (a write here could land inside a half-written frame).
pub(super) struct ReadSide {
    /// Bytes hyper read past the upgrade request (a client may send frames right away).
    early: Bytes,
    io: OwnedReadHalf,
    /// The connection's place in the census, given up when the session ends.
    _seat: Seat,
}

impl AsyncRead for ReadSide {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.early.has_remaining() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..n]);
            self.early.advance(n);
            if !self.early.has_remaining() {
                self.early = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The upgraded connection as the session's two halves; `None` if hyper's I/O is not the
/// socket the accept loop served (it always is). Everything else of hyper's is dropped here:
/// its read buffer (8 KiB) would otherwise live as long as the session.
pub(super) fn halves(upgraded: hyper::upgrade::Upgraded) -> Option<(ReadSide, TcpWrite)> {
    let parts = upgraded.downcast::<ServedIo>().ok()?;
    let early = Bytes::copy_from_slice(&parts.read_buf);
    let (tcp, seat) = parts.io.into_inner().into_parts();
    let (read, write) = tcp.into_split();
    Some((ReadSide { early, io: read, _seat: seat }, TcpWrite(write)))
}

/// A read error that the client caused: the close code, its reason and a bounded metric label.
/// A frame over 64 KiB is 1009, invalid UTF-8 in a text message 1007 (§8.1), any other
/// protocol violation 1002 (§7.4.1); anything else (reset, EOF) is `None`, the client gone.
pub(super) fn violation(e: &tungstenite::Error) -> Option<(u16, &'static str, &'static str)> {
    use tungstenite::error::{CapacityError, Error, ProtocolError as P};
    Some(match e {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => (close::TOO_BIG, "frame too large", "too_big"),
        Error::Utf8(_) => (close::INVALID_PAYLOAD, "invalid UTF-8", "invalid_utf8"),
        Error::Protocol(p) => {
            let label = match p {
                P::UnmaskedFrameFromClient => "unmasked_frame",
                P::NonZeroReservedBits => "reserved_bits",
                P::UnknownControlFrameType(_) | P::UnknownDataFrameType(_) | P::InvalidOpcode(_) => "unknown_opcode",
                P::UnexpectedContinueFrame | P::ExpectedFragment(_) => "bad_fragmentation",
                P::FragmentedControlFrame => "fragmented_control_frame",
                P::ControlFrameTooBig => "control_frame_too_big",
                P::InvalidCloseSequence => "invalid_close",
                _ => "other",
            };
            (close::PROTOCOL_ERROR, "protocol violation", label)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(len: usize) -> Vec<u8> {
        let out = Out::new(OP_TEXT, Bytes::from(vec![b'x'; len]));
        out.head[..usize::from(out.head_len)].to_vec()
    }

    /// Takes at most `chunk` bytes per write and refuses every other call (`Pending`).
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let me = self.get_mut();
            me.calls += 1;
            if me.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(me.chunk);
            me.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_and_refused_writes_resume_where_they_stopped() {
        let mut w = Writer::new(Trickle { got: Vec::new(), chunk: 7, calls: 0 });
        let big = "y".repeat(300);
        w.text(Bytes::from_static(b"{\"a\":1}"));
        w.ping();
        w.text(Bytes::from(big.clone()));
        w.close(1001, "bye");
        std::future::poll_fn(|cx| w.poll_flush(cx)).await.unwrap();
        let mut want = vec![0x81, 7];
        want.extend_from_slice(b"{\"a\":1}");
        want.extend_from_slice(&[0x89, 0, 0x81, 126, 1, 44]);
        want.extend_from_slice(big.as_bytes());
        want.extend_from_slice(&[0x88, 5, 0x03, 0xE9]);
        want.extend_from_slice(b"bye");
        assert_eq!(w.io.got, want);
        assert!(w.queue.is_empty() && w.done == 0 && w.partial == 0);
    }

    #[tokio::test]
    async fn a_frame_framed_once_goes_out_as_the_same_bytes_as_one_framed_per_socket() {
        let big = "z".repeat(70_000);
        let mut each = Writer::new(Trickle { got: Vec::new(), chunk: 5, calls: 0 });
        let mut shared = Writer::new(Trickle { got: Vec::new(), chunk: 5, calls: 0 });
        for body in ["{}", "{\"type\":\"message\"}", big.as_str()] {
            each.text(Bytes::copy_from_slice(body.as_bytes()));
            shared.framed(text_frame(body.as_bytes()));
            shared.ping();
            each.ping();
        }
        std::future::poll_fn(|cx| each.poll_flush(cx)).await.unwrap();
        std::future::poll_fn(|cx| shared.poll_flush(cx)).await.unwrap();
        assert_eq!(shared.io.got.len(), each.io.got.len());
        assert!(shared.io.got == each.io.got, "the pre-framed frames differ from the ones framed by the writer");
    }

    #[test]
    fn lengths_use_the_shortest_rfc6455_form() {
        assert_eq!(head(125), [0x81, 125]);
        assert_eq!(head(126), [0x81, 126, 0, 126]);
        assert_eq!(head(65_535), [0x81, 126, 0xff, 0xff]);
        assert_eq!(head(65_536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
