import Dispatch
import Foundation

/// Work splitting across cores for our own loops (BLAS has its own threads).
///
/// The worker count defaults to `CAUSAL_TUNE_NUM_THREADS`, else `OPENBLAS_NUM_THREADS`,
/// else the number of active cores, so that under `mpirun` with one BLAS thread per rank
/// our loops do not oversubscribe the cores either.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads: Int = defaultThreadCount()

    /// The number of workers `parallelFor` uses.
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

    /// Calls `body` on disjoint chunks that cover `0..<count`, in parallel.
    ///
    /// `grain` is the smallest chunk worth a thread hop; small problems run inline on the
    /// calling thread. Chunks are contiguous so each worker streams through memory.
    @inline(__always)
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = Swift.min(threads, Swift.max(1, count / Swift.max(grain, 1)))
        if workers <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let start = w * chunk
            let end = Swift.min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }
}
