//! A stream (plain TCP or TLS) with the bytes already read from it put back in front, so the HTTP
//! server can parse a request whose head was read to see whether it is a WebSocket upgrade.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A stream that reads `prefix` before the stream itself.
pub struct PrefixedStream<S = TcpStream> {
    prefix: Vec<u8>,
    read: usize,
    stream: S,
}

impl<S> PrefixedStream<S> {
    /// Puts `prefix` back in front of `stream`.
    pub fn new(prefix: Vec<u8>, stream: S) -> Self {
        PrefixedStream { prefix, read: 0, stream }
    }

    /// The stream and the part of the prefix not read yet.
    pub fn into_parts(mut self) -> (S, Vec<u8>) {
        self.prefix.drain(..self.read);
        (self.stream, self.prefix)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.read);
            buf.put_slice(&this.prefix[this.read..this.read + n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_the_prefix_then_the_socket() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        client.write_all(b" world").await?;
        let mut s = PrefixedStream::new(b"hello".to_vec(), server);
        let mut first = [0u8; 3];
        s.read_exact(&mut first).await?;
        assert_eq!(&first, b"hel");
        let (stream, rest) = s.into_parts();
        assert_eq!(rest, b"lo");
        let mut s = PrefixedStream::new(rest, stream);
        let mut all = [0u8; 8];
        s.read_exact(&mut all).await?;
        assert_eq!(&all, b"lo world");
        s.write_all(b"ok").await?;
        let mut back = [0u8; 2];
        client.read_exact(&mut back).await?;
        assert_eq!(&back, b"ok");
        Ok(())
    }
}
