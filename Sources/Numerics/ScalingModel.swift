import Foundation

/// A model of how the work of `Parallel` regions would scale to more threads than this
/// machine has (`causal-tune bench --model-threads`).
///
/// `measure(threads: T)` runs its body with `Parallel.threads = T` and every region that
/// would be dispatched cut exactly as it would be for T workers (`forEach`'s chunks, a
/// product's tiles, `forEachDynamic`'s items) — but the parts run one after another on the
/// calling thread, marked as inside a region (nested work runs inline, as on a worker),
/// each one timed. Per call site (`#fileID` of the `forEach`) it records the regions, the
/// sum of their parts' times (the one-thread time) and the sum of each region's largest
/// part (what T workers would wait for). `forEachDynamic` regions are list-scheduled: each
/// item goes to the modelled worker that is free first, as the shared counter hands them
/// out. Work outside regions is serial at any T. Times are the calling thread's CPU time.
///
/// It is a model: the parts share no memory bandwidth or cache, and waking workers and
/// waiting for them costs nothing in it.
public final class ScalingModel: @unchecked Sendable {   // touched by the thread in `measure` only
    /// One call site's regions during a `measure`.
    public struct Site: Sendable, Equatable {
        /// `#fileID` of the region's call site, "Module/File.swift".
        public var file: String
        /// Regions dispatched (regions that run inline at T threads are not counted: their
        /// time is outside regions).
        public var regions = 0
        /// Σ over the regions of all parts' time: their time on one thread.
        public var serialSeconds = 0.0
        /// Σ over the regions of the largest part (the most-loaded worker for
        /// `forEachDynamic`): their time on T workers, in the model.
        public var largestSeconds = 0.0
        /// Σ over the regions of the whole region as the model ran it: the parts plus the
        /// model's own timing between them (a thread-CPU clock read is a system call of
        /// ≈ 0.3 µs, and a region at T = 64 reads it 128 times) and its recording of the
        /// region before (≈ 4 µs: 0.006 s a ViT-L step of ≈ 1500 regions). The time outside
        /// regions is the step minus this, so that the model's bookkeeping is not taken for
        /// serial work.
        public var modelledSeconds = 0.0
    }

    static let shared = ScalingModel()

    private var sites: [UInt: Site] = [:]
    /// The last `record`'s own time, ns, charged to the next region's `modelledSeconds`.
    private var recording: UInt64 = 0

    private init() {}

    /// Runs `body` on the calling thread (not inside a region) with the model at `threads`
    /// workers and returns the call sites' records, largest one-thread time first.
    public static func measure(threads: Int, _ body: () throws -> Void) rethrows -> [Site] {
        precondition(threads >= 1, "ScalingModel: threads must be at least 1, got \(threads)")
        precondition(!Parallel.isInsideRegion && !Parallel.modelling, "ScalingModel.measure: nested")
        let saved = Parallel.threads
        shared.sites.removeAll(keepingCapacity: true)
        shared.recording = 0
        Parallel.threads = threads
        Parallel.modelling = true
        defer {
            Parallel.modelling = false
            Parallel.threads = saved
        }
        try body()
        return shared.sites.values.sorted { ($0.serialSeconds, $0.file) > ($1.serialSeconds, $1.file) }
    }

    /// The calling thread's CPU time, ns. Parts are timed by it, not by the wall clock: on a
    /// shared machine a part that loses its core for a while must not look like the
    /// largest (what a descheduled part costs is not what the model is about).
    @inline(__always)
    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The calling thread's CPU time in seconds (time a modelled step by it: in the model
    /// all of the step's work runs on the calling thread).
    public static func threadCPUSeconds() -> Double { Double(now()) / 1e9 }

    /// The shortest of at least 3 runs of `body` and 0.2 s of them, by the thread's CPU clock:
    /// the time behind the one-worker rates `bench --model-threads` prints.
    public static func bestSeconds(_ body: () -> Void) -> Double {
        var best = Double.infinity, spent = 0.0, calls = 0
        while calls < 3 || spent < 0.2 {
            let t0 = threadCPUSeconds()
            body()
            let dt = threadCPUSeconds() - t0
            best = Swift.min(best, dt)
            spent += dt
            calls += 1
        }
        return best
    }

    /// The parts of one `forEach` region (or a split product), one after another, timed.
    func runParts(_ parts: Int, site: StaticString, _ part: (Int) -> Void) {
        var largest: UInt64 = 0, total: UInt64 = 0
        let start = ScalingModel.now()
        Parallel.markRegion(true)
        for p in 0..<parts {
            let t0 = ScalingModel.now()
            part(p)
            let dt = ScalingModel.now() &- t0
            largest = Swift.max(largest, dt)
            total &+= dt
        }
        Parallel.markRegion(false)
        record(site, largest: largest, total: total, start: start)
    }

    /// The items of one `forEachDynamic` region in order, each on the modelled worker that
    /// is free first (lowest index on ties).
    func runListScheduled(items: Int, workers: Int, site: StaticString, _ body: (Int, Int) -> Void) {
        let start = ScalingModel.now()
        var load = [UInt64](repeating: 0, count: workers)
        var total: UInt64 = 0
        Parallel.markRegion(true)
        for item in 0..<items {
            var w = 0
            for i in 1..<workers where load[i] < load[w] { w = i }
            let t0 = ScalingModel.now()
            body(item, w)
            let dt = ScalingModel.now() &- t0
            load[w] &+= dt
            total &+= dt
        }
        Parallel.markRegion(false)
        record(site, largest: load.max() ?? 0, total: total, start: start)
    }

    private func record(_ site: StaticString, largest: UInt64, total: UInt64, start: UInt64) {
        let end = ScalingModel.now()
        let key = UInt(bitPattern: site.utf8Start)
        if sites[key] == nil { sites[key] = Site(file: site.description) }
        sites[key]!.regions += 1
        sites[key]!.serialSeconds += Double(total) / 1e9
        sites[key]!.largestSeconds += Double(largest) / 1e9
        sites[key]!.modelledSeconds += Double(Swift.max(end &- start, total) &+ recording) / 1e9
        // This recording is the model's work too, not serial work of the step; it is known
        // only once done, so the next region carries it.
        recording = ScalingModel.now() &- end
    }
}
