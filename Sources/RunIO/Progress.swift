/// Progress of long work: count, rate and ETA.
///
///     train  1200/40000   3.0%  2.41 it/s  ETA 4:28:10  loss 0.8123
///
/// rate = (done − done₀) / (t − t₀) since the first update; ETA = (total − done) / rate.
/// Below 1 it/s the rate is shown as s/it. On a terminal (stderr is a TTY) one line is
/// redrawn in place (`\r`, at most 10 times a second); otherwise a plain line is written
/// every `plainInterval` seconds and at the end, so log files stay readable. Only rank 0
/// should create one (the caller's job).
import Foundation

/// `Progress` without the clash with Foundation's `Progress` (`RunIO.Progress` works too).
public typealias ProgressReporter = Progress

public final class Progress {
    /// What is counted (`train`, `eval citys`).
    public let label: String
    /// The number of items when complete (nil: unknown, no percentage or ETA).
    public let total: Int?
    /// The unit in the rate (`it`, `img`).
    public let unit: String
    /// Whether the line is redrawn in place.
    public let isTerminal: Bool
    /// Seconds between plain lines when not a terminal.
    public let plainInterval: TimeInterval

    private let write: (String) -> Void
    private let clock: () -> TimeInterval
    private var startTime: TimeInterval?
    private var startCount = 0
    private var lastDraw: TimeInterval = -.infinity
    private var lastLength = 0
    private var finished = false
    public private(set) var completed = 0

    /// A reporter writing to stderr (redrawn when stderr is a terminal).
    public convenience init(label: String, total: Int?, unit: String = "it", startingAt start: Int = 0,
                            plainInterval: TimeInterval = 30) {
        self.init(label: label, total: total, unit: unit, startingAt: start, isTerminal: isatty(2) != 0,
                  plainInterval: plainInterval,
                  write: { FileHandle.standardError.write(Data($0.utf8)) },
                  clock: { ProcessInfo.processInfo.systemUptime })
    }

    /// A reporter with an explicit sink and clock (tests, log files).
    public init(label: String, total: Int?, unit: String = "it", startingAt start: Int = 0, isTerminal: Bool,
                plainInterval: TimeInterval = 30, write: @escaping (String) -> Void,
                clock: @escaping () -> TimeInterval) {
        self.label = label
        self.total = total
        self.unit = unit
        self.isTerminal = isTerminal
        self.plainInterval = plainInterval
        self.write = write
        self.clock = clock
        self.completed = start
        self.startCount = start
    }

    /// Marks `count` items done (absolute) and redraws when due; `extra` is appended
    /// (e.g. `loss 0.8123`).
    public func update(to count: Int, extra: String = "") {
        let now = clock()
        if startTime == nil {
            startTime = now
            startCount = completed
        }
        completed = count
        let interval = isTerminal ? 0.1 : plainInterval
        if now - lastDraw >= interval {
            draw(now: now, extra: extra)
        }
    }

    /// Marks `n` more items done.
    public func advance(by n: Int = 1, extra: String = "") { update(to: completed + n, extra: extra) }

    /// Draws the final state and ends the line.
    public func finish(extra: String = "") {
        guard !finished else { return }
        finished = true
        draw(now: clock(), extra: extra, final: true)
    }

    /// Items per second since the first update (nil before any time has passed).
    public var rate: Double? {
        guard let startTime else { return nil }
        let elapsed = clock() - startTime
        guard elapsed > 0 else { return nil }
        return Double(completed - startCount) / elapsed
    }

    /// The current line without control characters.
    public func line(now: TimeInterval? = nil, extra: String = "") -> String {
        let now = now ?? clock()
        var parts = [label]
        if let total {
            let width = String(total).count
            let count = String(completed)
            parts.append(String(repeating: " ", count: max(0, width - count.count)) + count + "/\(total)")
            let percent = total > 0 ? 100 * Double(completed) / Double(total) : 100
            parts.append(String(format: "%5.1f%%", percent))
        } else {
            parts.append("\(completed)")
        }
        let elapsed = startTime.map { now - $0 } ?? 0
        let done = completed - startCount
        if elapsed > 0, done > 0 {
            let r = Double(done) / elapsed
            parts.append(Progress.formatRate(r, unit: unit))
            if let total, completed < total {
                parts.append("ETA " + Progress.formatDuration(Double(total - completed) / r))
            } else {
                parts.append("in " + Progress.formatDuration(elapsed))
            }
        }
        if !extra.isEmpty { parts.append(extra) }
        return parts.joined(separator: "  ")
    }

    private func draw(now: TimeInterval, extra: String, final: Bool = false) {
        lastDraw = now
        let text = line(now: now, extra: extra)
        if isTerminal {
            let pad = String(repeating: " ", count: max(0, lastLength - text.count))
            lastLength = text.count
            write("\r" + text + pad + (final ? "\n" : ""))
        } else {
            write(text + "\n")
        }
    }

    /// `2.41 it/s`, or `3.20 s/it` below one item a second.
    public static func formatRate(_ perSecond: Double, unit: String) -> String {
        if perSecond >= 1 || perSecond <= 0 { return String(format: "%.2f", perSecond) + " \(unit)/s" }
        return String(format: "%.2f", 1 / perSecond) + " s/\(unit)"
    }

    /// `H:MM:SS` (or `M:SS` under an hour; days as `Nd H:MM:SS`).
    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        let (d, h, m, s) = (total / 86400, (total % 86400) / 3600, (total % 3600) / 60, total % 60)
        if d > 0 { return String(format: "%dd %d:%02d:%02d", d, h, m, s) }
        if h > 0 { return String(format: "%d:%02d:%02d", h, m, s) }
        return String(format: "%d:%02d", m, s)
    }
}
