/// The human log of a run: timestamped lines to stderr and to `WORK_DIR/<name>.log`.
///
///     2026-11-22T10:41:07Z  step 50/40000  loss 1.2346  lr 9.99e-05
///
/// `RunLog` is also the swift-log backend: the command line calls `bootstrapLogging()` once,
/// after which every module's `Logger` writes to `RunLog.current` — the running command's
/// log (stderr, plus `train.log` while training; nothing on ranks other than 0).
/// `runLog.logger(label:)` gives a `Logger` bound to one log.
import Core
import Foundation
import Logging

// @unchecked: every write to the file and to stderr takes the log's lock.
public final class RunLog: @unchecked Sendable {
    /// The log file, if one was opened.
    public let path: String?
    /// Whether lines are echoed to stderr.
    public let echo: Bool
    private let handle: FileHandle?
    private let lock = NSLock()

    /// A log writing to stderr when `echo` and to `path` (appended; directories created)
    /// when given.
    public init(path: String?, echo: Bool = true) throws {
        self.path = path
        self.echo = echo
        if let path {
            let url = URL(fileURLWithPath: path)
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw CausalTuneError("\(path): cannot create log file")
                }
            }
            guard let h = FileHandle(forWritingAtPath: path) else { throw CausalTuneError("\(path): cannot open log file") }
            h.seekToEndOfFile()
            handle = h
        } else {
            handle = nil
        }
    }

    /// A log that only echoes to stderr.
    public static func console() -> RunLog {
        // Cannot fail without a file.
        (try? RunLog(path: nil, echo: true)) ?? preconditionFailureLog()
    }

    private static func preconditionFailureLog() -> RunLog { preconditionFailure("RunLog without a file cannot fail") }

    /// A log that writes nothing (ranks other than 0).
    public static func silent() -> RunLog {
        (try? RunLog(path: nil, echo: false)) ?? preconditionFailureLog()
    }

    deinit { try? handle?.close() }

    /// The ISO-8601 UTC time, as used in log lines and checkpoint attributes.
    public static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// Writes one line (multi-line text is written line by line, each timestamped).
    public func info(_ message: String) {
        let stamp = RunLog.timestamp()
        let text = message.split(separator: "\n", omittingEmptySubsequences: false)
            .map { "\(stamp)  \($0)\n" }.joined()
        lock.lock()
        defer { lock.unlock() }
        if echo { FileHandle.standardError.write(Data(text.utf8)) }
        if let handle { try? handle.write(contentsOf: Data(text.utf8)); try? handle.synchronize() }
    }

    /// Writes one line to the log file only (not echoed): the fatal error that the command
    /// line prints itself, so `train.log` ends with why the run stopped.
    public func recordInFile(_ message: String) {
        guard let handle else { return }
        let text = "\(RunLog.timestamp())  \(message.replacingOccurrences(of: "\n", with: " "))\n"
        lock.lock()
        defer { lock.unlock() }
        try? handle.write(contentsOf: Data(text.utf8))
        try? handle.synchronize()
    }

    /// Writes a warning line (`warning: …`).
    public func warning(_ message: String) { info("warning: " + message) }

    // Guarded by `currentLock`.
    nonisolated(unsafe) private static var currentLog: RunLog?
    private static let currentLock = NSLock()

    /// Where the modules' swift-log messages go; stderr until a command sets its own log.
    public static var current: RunLog {
        get {
            currentLock.lock(); defer { currentLock.unlock() }
            if let log = currentLog { return log }
            let console = RunLog.console()
            currentLog = console
            return console
        }
        set { currentLock.lock(); currentLog = newValue; currentLock.unlock() }
    }

    /// Routes every `Logger` of the process to `RunLog.current`. Call once, at startup.
    public static func bootstrapLogging() {
        LoggingSystem.bootstrap { _ in RunLogHandler(log: nil) }
    }

    /// A swift-log `Logger` writing through this log.
    public func logger(label: String, level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { _ in RunLogHandler(log: self) }
        logger.logLevel = level
        return logger
    }
}

/// A swift-log handler that writes to a `RunLog` (nil: `RunLog.current` at each message).
public struct RunLogHandler: LogHandler {
    public let log: RunLog?
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init(log: RunLog?) { self.log = log }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        let message = event.message
        let suffix = all.isEmpty ? "" : "  " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let prefix = level == .info || level == .notice ? "" : "\(level): "
        (log ?? RunLog.current).info(prefix + message.description + suffix)
    }
}
