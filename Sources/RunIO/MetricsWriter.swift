/// Machine-readable metrics: `WORK_DIR/metrics.jsonl`, one JSON object a line.
///
///     {"step": 50, "loss": 1.2345678, "lr": 9.98e-05, "time_s": 12.5}
///
/// Lines are appended and flushed one at a time, so a crashed or running job's file is
/// always valid up to its last line. Each line is a `JSONValue` object: keys in the order
/// given, doubles at full precision, non-finite numbers `null`.
import Core
import Foundation

/// Appends JSON lines to a file, flushing each.
public final class MetricsWriter {
    public let path: String
    private let handle: FileHandle

    /// Opens (creating directories and the file as needed) `path` for appending.
    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw CausalTuneError("\(url.deletingLastPathComponent().path): cannot create directory")
        }
        // O_APPEND: every write lands at the end of the file as one unit, whatever else
        // writes to it, so lines never overwrite or interleave with each other.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CausalTuneError("\(path): cannot open for appending: \(String(cString: strerror(errno)))")
        }
        self.handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Drops the lines whose `"step"` is above `step` (a resumed run continues from there;
    /// the lines of the abandoned steps would draw two histories). The file is rewritten
    /// atomically; lines without a step, or that do not parse, are kept.
    public static func dropLines(after step: Int, in path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        var kept: [Substring] = []
        var dropped = 0
        for line in lines {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let s = object["step"] as? Int, s > step {
                dropped += 1
                continue
            }
            kept.append(line)
        }
        guard dropped > 0 else { return }
        try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: path)
    }

    /// `WORK_DIR/metrics.jsonl`.
    public convenience init(workDir: String) throws {
        try self.init(path: URL(fileURLWithPath: workDir).appendingPathComponent("metrics.jsonl").path)
    }

    deinit { try? handle.close() }

    /// Appends one object (keys in the given order) as a line and flushes it.
    public func write(_ fields: KeyValuePairs<String, JSONValue>) throws {
        try write(object: fields.map { ($0.key, $0.value) })
    }

    /// Appends one object as a line and flushes it.
    public func write(object fields: [(String, JSONValue)]) throws {
        let line = JSONValue.object(fields).text + "\n"
        do {
            try handle.write(contentsOf: Data(line.utf8))
            try handle.synchronize()
        } catch {
            throw CausalTuneError("\(path): cannot write metrics (disk full?)")
        }
    }
}
