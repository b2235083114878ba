//! The gzip of every layer, compressed in parallel, pigz-style: the tar stream is cut into
//! fixed blocks, each block is deflated on its own (primed with the 32 KiB before it, so
//! matches still reach back), and the pieces are joined into one gzip member. A block whose
//! bytes look random (already compressed data, embedded assets) is stored instead, which costs
//! a copy rather than a fruitless search for matches. The bytes depend on the block size, the
//! level, the test for random blocks and the backend (zlib-rs), all fixed here, and not on the
//! number of threads, so the digest is the same on any machine; `layer_bytes_are_pinned` (in
//! `layer.rs`) holds it.

use std::io::{self, Read, Write};
use std::sync::{Arc, mpsc};

use flate2::{Compress, Compression, Crc, FlushCompress};
use sha2::Digest as _;

use super::reuse::{BlockEntry, BlockReuse, block_key, piece_check};
use crate::digest::Digest;

/// Level 2, not 1: zlib-rs's level 1 ("quick") uses static Huffman codes only, which makes Go
/// binaries about 12% larger than level 2 does, and grows random data by 5%.
const LEVEL: u32 = 2;
/// The unit of parallel work and of the stored-or-deflated choice.
pub(crate) const BLOCK: usize = 128 * 1024;
/// Deflate's window: each block is primed with this much of what precedes it.
const WINDOW: usize = 32 * 1024;
/// Blocks gathered before they are compressed together; a multiple of any thread count used.
const BATCH: usize = 8;
/// Threads per layer. The bytes do not depend on it; it is fixed rather than the core count
/// so that several layers built at once do not each start a thread per core.
const THREADS: usize = 2;

/// True when a block's byte histogram is within 3% of uniform (by the sum of squared counts),
/// as in random or already compressed data, which deflate cannot shrink. Integer arithmetic
/// only, so every machine decides alike.
fn looks_random(block: &[u8]) -> bool {
    if block.len() < 4096 {
        return false;
    }
    // Four tables, so that a run of one byte value does not wait on one counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = block.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let n = block.len() as u64;
    let squares: u64 = (0..256)
        .map(|i| {
            let c: u64 = counts.iter().map(|table| u64::from(table[i])).sum();
            c * c
        })
        .sum();
    256 * squares * 32 <= n * n * 33
}

/// Deflate stored blocks (at most 65535 bytes each), not final. The stream must be at a byte
/// boundary, which it is after a sync flush or another stored block.
fn stored(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// One block (not [`looks_random`]) as raw deflate ending in a sync flush (so at a byte
/// boundary, not final).
fn deflate_block(compressor: &mut Compress, block: &[u8], window: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 8 + 1024);
    compressor.reset();
    if !window.is_empty() {
        compressor.set_dictionary(window).map_err(io::Error::other)?;
    }
    let start_in = compressor.total_in();
    loop {
        let consumed = (compressor.total_in() - start_in) as usize;
        compressor.compress_vec(&block[consumed..], &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
        let done = (compressor.total_in() - start_in) as usize == block.len();
        // The flush is complete when it left room in the output.
        if done && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

/// Compressed blocks, in order, with what the next layer needs to reuse them.
type Blocks = Vec<(BlockEntry, Vec<u8>)>;

/// One block compressed, or copied from an earlier layer when it has it.
fn compress_block(
    compressor: &mut Compress,
    block: &[u8],
    window: &[u8],
    reuse: Option<&BlockReuse>,
) -> io::Result<(BlockEntry, Vec<u8>)> {
    // A stored block costs a copy either way: it is neither keyed nor looked up.
    if looks_random(block) {
        let mut piece = Vec::with_capacity(block.len() + 64);
        stored(block, &mut piece);
        return Ok((BlockEntry { key: None, len: piece.len() as u32, check: 0 }, piece));
    }
    let key = block_key(window, block);
    let piece = match reuse.and_then(|r| r.piece(&key)) {
        Some(piece) => piece,
        None => deflate_block(compressor, block, window)?,
    };
    let entry = BlockEntry { key: Some(key), len: piece.len() as u32, check: piece_check(&piece) };
    Ok((entry, piece))
}

/// What [`BlockGzip::finish`] gives back.
pub(crate) struct Finished<W> {
    pub inner: W,
    /// The digest of the uncompressed data.
    pub diff_id: Digest,
    /// Each compressed block, for reuse by the next layer of the same binary.
    pub blocks: Vec<BlockEntry>,
}

/// Blocks `first..first + count` of a batch to compress; the first block of the batch is
/// primed with `window`, the others with what precedes them in the batch.
struct Job {
    batch: Arc<Vec<u8>>,
    window: Arc<Vec<u8>>,
    first: usize,
    count: usize,
}

impl Job {
    fn run(&self, compressor: &mut Compress, reuse: Option<&BlockReuse>) -> io::Result<Blocks> {
        (self.first..self.first + self.count)
            .map(|i| {
                let block = &self.batch[i * BLOCK..self.batch.len().min((i + 1) * BLOCK)];
                let window =
                    if i == 0 { &self.window[..] } else { &self.batch[(i * BLOCK).saturating_sub(WINDOW)..i * BLOCK] };
                compress_block(compressor, block, window, reuse)
            })
            .collect()
    }
}

/// A thread that compresses the jobs it is sent, in order, for the life of one layer. One
/// thread per layer and not per batch: a batch is 1 MiB, and starting threads for each cost
/// ten images' fleet some 40 ms of CPU (stacks mapped, faulted in and given back).
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<io::Result<Blocks>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(reuse: Option<Arc<BlockReuse>>) -> io::Result<Worker> {
        let (jobs, incoming) = mpsc::channel::<Job>();
        let (done, results) = mpsc::channel();
        let thread = std::thread::Builder::new().name("ko-gzip".into()).spawn(move || {
            let mut compressor = Compress::new(Compression::new(LEVEL), false);
            for job in incoming {
                let blocks = job.run(&mut compressor, reuse.as_deref());
                // Before the answer, so the batch's owner can take the batch back at once.
                drop(job);
                if done.send(blocks).is_err() {
                    break;
                }
            }
        })?;
        Ok(Worker { jobs: Some(jobs), results, thread: Some(thread) })
    }

    fn send(&self, job: Job) {
        self.jobs.as_ref().expect("worker jobs").send(job).expect("compression thread");
    }

    fn receive(&self) -> io::Result<Blocks> {
        self.results.recv().expect("compression thread")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A gzip writer that compresses in parallel and gives the same bytes for the same input
/// whatever the thread count or the sizes of the writes. It also hashes its input (a layer's
/// diff ID). Work is pipelined by batch: while the worker threads compress one batch, the
/// writing thread hashes its input and writes out the previous batch's output.
pub(crate) struct BlockGzip<W: Write> {
    inner: W,
    /// Full blocks (and at the end a partial one) waiting to be compressed.
    pending: Vec<u8>,
    /// The last `WINDOW` bytes before `pending`.
    window: Vec<u8>,
    crc: Crc,
    input: sha2::Sha256,
    threads: usize,
    /// Started with the first batch, as many as it has blocks, up to `threads`.
    workers: Vec<Worker>,
    /// The compressed blocks of the last batch, written while the next one is compressed.
    unwritten: Blocks,
    reuse: Option<Arc<BlockReuse>>,
    written: Vec<BlockEntry>,
}

impl<W: Write> BlockGzip<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        Self::with_threads(inner, THREADS)
    }

    fn with_threads(mut inner: W, threads: usize) -> io::Result<Self> {
        // Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        Ok(BlockGzip {
            inner,
            pending: Vec::with_capacity(BLOCK * BATCH),
            window: Vec::new(),
            crc: Crc::new(),
            input: sha2::Sha256::new(),
            threads: threads.max(1),
            workers: Vec::new(),
            unwritten: Vec::new(),
            reuse: None,
            written: Vec::new(),
        })
    }

    /// Copies blocks from an earlier layer where they are the same (see `reuse`).
    pub(crate) fn reusing(mut self, reuse: Option<Arc<BlockReuse>>) -> Self {
        self.reuse = reuse;
        self
    }

    /// Compresses everything pending (whole blocks, and a partial last one at the end).
    fn compress_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return self.write_unwritten();
        }
        let blocks = self.pending.len().div_ceil(BLOCK);
        while self.workers.len() < self.threads.min(blocks) {
            self.workers.push(Worker::start(self.reuse.clone())?);
        }
        let batch = Arc::new(std::mem::take(&mut self.pending));
        let window = Arc::new(std::mem::take(&mut self.window));
        let per_worker = blocks.div_ceil(self.workers.len());
        let mut sent = 0;
        for (worker, first) in self.workers.iter().zip((0..blocks).step_by(per_worker)) {
            let count = per_worker.min(blocks - first);
            worker.send(Job { batch: batch.clone(), window: window.clone(), first, count });
            sent += 1;
        }
        // Meanwhile, here: the input's checksums, and the last batch's output written out.
        self.crc.update(&batch);
        self.input.update(&batch[..]);
        let written = self.write_unwritten();
        let mut compressed = Vec::with_capacity(blocks);
        for worker in &self.workers[..sent] {
            compressed.push(worker.receive());
        }
        written?;
        for blocks in compressed {
            self.unwritten.extend(blocks?);
        }
        // The workers dropped their shares of the batch and window before answering.
        let mut batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| shared.to_vec());
        let window = Arc::try_unwrap(window).unwrap_or_else(|shared| shared.to_vec());
        let keep = batch.len().min(WINDOW);
        let tail = &batch[batch.len() - keep..];
        self.window = if keep < WINDOW {
            let mut window = window;
            window.extend_from_slice(tail);
            let excess = window.len().saturating_sub(WINDOW);
            window.drain(..excess);
            window
        } else {
            tail.to_vec()
        };
        batch.clear();
        self.pending = batch;
        Ok(())
    }

    /// Reads `reader` to its end straight into the pending batch (no buffer between, as
    /// `io::copy` would have, and reads of up to a batch), compressing each full batch;
    /// the same as writing what it reads. Returns how much it read.
    pub(crate) fn read_from(&mut self, mut reader: impl Read) -> io::Result<u64> {
        let mut total = 0;
        loop {
            let room = BLOCK * BATCH - self.pending.len();
            let read = reader.by_ref().take(room as u64).read_to_end(&mut self.pending)?;
            total += read as u64;
            if self.pending.len() == BLOCK * BATCH {
                self.compress_pending()?;
            }
            if read < room {
                return Ok(total);
            }
        }
    }

    fn write_unwritten(&mut self) -> io::Result<()> {
        for (entry, block) in std::mem::take(&mut self.unwritten) {
            self.inner.write_all(&block)?;
            self.written.push(entry);
        }
        Ok(())
    }

    /// Ends the deflate stream, writes the trailer and returns the inner writer, with the
    /// digest and size of what was written to this one (the uncompressed data).
    pub(crate) fn finish(mut self) -> io::Result<Finished<W>> {
        self.compress_pending()?;
        self.write_unwritten()?;
        // An empty final stored block.
        self.inner.write_all(&[1, 0, 0, 0xff, 0xff])?;
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        self.workers.clear();
        let BlockGzip { inner, input, written, .. } = self;
        Ok(Finished { inner, diff_id: Digest::from_hasher(input), blocks: written })
    }
}

impl<W: Write> Write for BlockGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK * BATCH - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == BLOCK * BATCH {
            self.compress_pending()?;
        }
        Ok(n)
    }

    /// Blocks are cut at fixed offsets, so a flush cannot end one early; it only passes on.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// Several blocks: text, then pseudo-random bytes (stored), then text again.
    pub(crate) fn sample_data() -> Vec<u8> {
        let mut data = Vec::new();
        while data.len() < 200 * 1024 {
            data.extend_from_slice(format!("line {} of a layer\n", data.len() % 97).as_bytes());
        }
        let mut x: u32 = 1;
        for _ in 0..300 * 1024 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            data.push((x >> 24) as u8);
        }
        while data.len() < 620 * 1024 + 17 {
            data.extend_from_slice(format!("{} more lines\n", data.len() % 89).as_bytes());
        }
        data
    }

    fn gzip(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut gz = BlockGzip::with_threads(Vec::new(), threads).unwrap();
        for piece in data.chunks(write_size.max(1)) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap().inner
    }

    #[test]
    fn the_bytes_depend_neither_on_threads_nor_on_write_sizes() {
        let data = sample_data();
        let reference = gzip(&data, 2, 64 * 1024);
        for (threads, write_size) in [(1, 1 << 20), (3, 4096), (8, 1000), (2, 3 * BLOCK * BATCH)] {
            assert!(gzip(&data, threads, write_size) == reference, "{threads} threads, writes of {write_size}");
        }
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(reference.as_slice()).read_to_end(&mut decoded).unwrap();
        assert!(decoded == data);
        assert!(reference.len() < data.len() * 3 / 5, "{} of {}", reference.len(), data.len());
    }

    /// Hands out at most 7777 bytes a read, as a pipe might.
    struct Dribble<'a>(&'a [u8]);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7777);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn reading_into_the_batch_gives_the_bytes_writing_gives() {
        let data = [sample_data(), sample_data()].concat();
        assert!(data.len() > BLOCK * BATCH);
        let mut gz = BlockGzip::with_threads(Vec::new(), 2).unwrap();
        gz.write_all(b"head").unwrap();
        assert_eq!(gz.read_from(Dribble(&data)).unwrap(), data.len() as u64);
        assert_eq!(gz.read_from(io::empty()).unwrap(), 0);
        gz.write_all(b"tail").unwrap();
        let expected = gzip(&[&b"head"[..], &data, b"tail"].concat(), 2, 64 * 1024);
        assert!(gz.finish().unwrap().inner == expected);
    }

    #[test]
    fn empty_and_tiny_inputs_are_valid_gzip() {
        for data in [&b""[..], b"x", &[7u8; BLOCK][..], &[9u8; BLOCK + 1][..]] {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(gzip(data, 2, 100).as_slice()).read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, data);
        }
    }

    #[test]
    fn random_blocks_are_stored_and_text_is_compressed() {
        let data = sample_data();
        assert!(!looks_random(&data[..BLOCK]));
        assert!(looks_random(&data[200 * 1024..200 * 1024 + BLOCK]));
        let random = &data[200 * 1024..500 * 1024];
        let out = gzip(random, 2, BLOCK);
        // Stored: a few bytes of framing per 64 KiB, nothing more.
        assert!(out.len() <= random.len() + random.len() / 1000, "{} for {}", out.len(), random.len());
    }
}
