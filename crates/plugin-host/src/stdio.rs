//! Guest stdout and stderr: every write is accepted, the first bytes are kept for the journey
//! and the rest only counted, so a plugin that prints a flood finishes as one that logs a
//! flood does (a log line says how much was dropped), instead of failing on a full pipe.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Writes accepted in one `check_write` permit.
const PERMIT: usize = 64 * 1024;

/// One output stream of one execution. Clones share the captured bytes.
#[derive(Clone)]
pub struct Captured {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    kept: Vec<u8>,
    keep: usize,
    dropped: u64,
}

impl Captured {
    /// A stream that keeps the first `keep` bytes written to it.
    pub fn new(keep: usize) -> Self {
        Captured {
            inner: Arc::new(Mutex::new(Buffer {
                kept: Vec::new(),
                keep,
                dropped: 0,
            })),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = b.keep.saturating_sub(b.kept.len()).min(bytes.len());
        b.kept.extend_from_slice(&bytes[..room]);
        b.dropped += (bytes.len() - room) as u64;
    }

    /// What was kept, as text, and how many bytes were dropped after it.
    pub fn contents(&self) -> (String, u64) {
        let b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (String::from_utf8_lossy(&b.kept).into_owned(), b.dropped)
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_start_and_counts_the_rest() {
        let out = Captured::new(10);
        let mut stream = out.clone();
        for _ in 0..3 {
            OutputStream::write(&mut stream, Bytes::from_static(b"hello\n")).unwrap();
        }
        assert_eq!(out.contents(), ("hello\nhell".to_owned(), 8));
        assert_eq!(stream.check_write().unwrap(), PERMIT);
    }
}
