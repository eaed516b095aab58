import Foundation

/// Work splitting across cores: our own loops *and* the matrix products.
///
/// The thread budget (`threads`) defaults to `CAUSAL_TUNE_NUM_THREADS`, else
/// `OPENBLAS_NUM_THREADS`, else `OMP_NUM_THREADS`, else the number of active cores, so that
/// under `mpirun` with one thread per rank nothing oversubscribes the cores. OpenBLAS itself
/// runs single-threaded (`BLAS`): a large product is split into row (or column) blocks over
/// these same workers, so there is one pool of threads, not two fighting for the cores
/// (OpenBLAS's idle workers spin in `sched_yield` while our loops run).
///
/// Regions do not nest: a `forEach` (or a split product) called from inside a worker runs
/// inline on that worker, so a body may call `BLAS.gemm` or `Kernels` freely. The workers
/// are `WorkerPool`'s persistent threads, which spin briefly between regions.
public enum Parallel {
    // Set by the main thread between regions (`threads = n`), never while workers run.
    nonisolated(unsafe) private static var configuredThreads: Int = defaultThreadCount()

    /// The number of workers `forEach` uses.
    public static var threads: Int {
        get { configuredThreads }
        set { configuredThreads = Swift.max(1, newValue) }
    }

    static func defaultThreadCount() -> Int {
        let env = ProcessInfo.processInfo.environment
        for key in ["CAUSAL_TUNE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let v = env[key], let n = Int(v), n > 0 { return n }
        }
        return Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The thread-specific key that marks a thread as running a `forEach` chunk.
    private static let regionKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is inside a parallel region (nested work runs inline).
    @inline(__always)
    public static var isInsideRegion: Bool { pthread_getspecific(regionKey) != nil }

    /// Calls `body` on disjoint chunks that cover `0..<count`, in parallel.
    ///
    /// `grain` is the smallest chunk worth a thread hop; small problems (and calls from
    /// inside another region) run inline on the calling thread. Chunks are contiguous so
    /// each worker streams through memory.
    @inline(__always)
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = Swift.min(threads, Swift.max(1, count / Swift.max(grain, 1)))
        if workers <= 1 || isInsideRegion {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        WorkerPool.shared.run(parts: workers) { w in
            let start = w * chunk
            let end = Swift.min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }

    /// Marks (or unmarks) the calling thread as running a part of a region.
    @inline(__always)
    static func markRegion(_ inside: Bool) {
        // Any non-nil pointer marks the thread; it is never dereferenced.
        pthread_setspecific(regionKey, inside ? UnsafeRawPointer(bitPattern: 1) : nil)
    }
}
