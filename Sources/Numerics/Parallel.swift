import Foundation
import Synchronization

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
///
/// With the scaling model on (`ScalingModel.measure`) every region is cut exactly as for
/// its modelled thread count but its parts run one after another on the calling thread,
/// each timed; the only cost when it is off is one branch per region that is dispatched.
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
    /// each worker streams through memory. `site` names the call site for the scaling
    /// model (leave it to its default).
    @inline(__always)
    public static func forEach(_ count: Int, grain: Int = 1, site: StaticString = #fileID,
                               _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = Swift.min(threads, Swift.max(1, count / Swift.max(grain, 1)))
        if workers <= 1 || isInsideRegion {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        dispatch(parts: workers, site: site) { w in
            let start = w * chunk
            let end = Swift.min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }

    /// Calls `body(item, worker)` for every item of `0..<items`, the items handed out one at
    /// a time from a shared counter to `workers` workers (at most `threads`), so uneven items
    /// balance themselves. `worker` (0..<workers) indexes per-worker scratch; each item must
    /// write only its own outputs, since which worker runs it varies from run to run.
    /// Inside another region (or with one worker) the items run in order on worker 0.
    ///
    /// Under the scaling model the items run in order on the calling thread and each goes
    /// to the modelled worker that is free first (the counter's list schedule).
    @inline(__always)
    public static func forEachDynamic(_ items: Int, workers requested: Int, site: StaticString = #fileID,
                                      _ body: (_ item: Int, _ worker: Int) -> Void) {
        if items <= 0 { return }
        let workers = Swift.min(requested, threads, items)
        if workers <= 1 || isInsideRegion {
            for item in 0..<items { body(item, 0) }
            return
        }
        if modelling {
            ScalingModel.shared.runListScheduled(items: items, workers: workers, site: site, body)
            return
        }
        let next = Atomic<Int>(0)
        WorkerPool.shared.run(parts: workers) { w in
            while true {
                let item = next.add(1, ordering: .relaxed).oldValue
                if item >= items { break }
                body(item, w)
            }
        }
    }

    /// Runs `part(0) … part(parts − 1)` on the workers, or timed one after another under
    /// the scaling model.
    @inline(__always)
    static func dispatch(parts: Int, site: StaticString, _ part: (Int) -> Void) {
        if modelling {
            ScalingModel.shared.runParts(parts, site: site, part)
        } else {
            WorkerPool.shared.run(parts: parts, part)
        }
    }

    /// Whether the scaling model is on (set only by `ScalingModel.measure`, between regions).
    nonisolated(unsafe) static var modelling = false

    /// Marks (or unmarks) the calling thread as running a part of a region.
    @inline(__always)
    static func markRegion(_ inside: Bool) {
        // Any non-nil pointer marks the thread; it is never dereferenced.
        pthread_setspecific(regionKey, inside ? UnsafeRawPointer(bitPattern: 1) : nil)
    }
}
