import Foundation

/// Wall-clock totals per named phase, for profiling without a profiler. Off unless the
/// environment sets `CAUSAL_TUNE_PHASE_TIMES=1`; then `measure` adds each call's seconds
/// to its phase and the totals are printed to stderr when the process exits
/// (`Mask2FormerHead`'s inference and `SegmentationNetwork.logits(window:)` report theirs).
public enum PhaseTimer {
    public static let enabled: Bool = {
        let on = ProcessInfo.processInfo.environment["CAUSAL_TUNE_PHASE_TIMES"] == "1"
        if on { atexit { PhaseTimer.report() } }
        return on
    }()
    // Guarded by `lock` (every read and write takes it).
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]
    nonisolated(unsafe) private static var order: [String] = []
    private static let lock = NSLock()

    @inline(__always) @discardableResult
    public static func measure<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        if !enabled { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        lock.lock()
        if totals[phase] == nil { order.append(phase) }
        let old = totals[phase] ?? (0, 0)
        totals[phase] = (old.seconds + s, old.calls + 1)
        lock.unlock()
        return r
    }

    /// Prints `phase  total s  calls  ms/call` for every phase, in first-seen order.
    public static func report() {
        lock.lock(); defer { lock.unlock() }
        var s = "phase times (CAUSAL_TUNE_PHASE_TIMES):\n"
        for p in order {
            let t = totals[p]!
            let name = p.count < 22 ? p + String(repeating: " ", count: 22 - p.count) : p
            s += "  " + name + String(format: " %9.3f s %7d calls %9.3f ms/call\n", t.seconds, t.calls,
                                      1000 * t.seconds / Double(max(1, t.calls)))
        }
        FileHandle.standardError.write(s.data(using: .utf8)!)
    }
}
