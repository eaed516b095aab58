import Core
import Foundation
import Synthetic

/// An exclusive lock on a work directory for a run's lifetime: `flock(LOCK_EX | LOCK_NB)` on
/// `WORK_DIR/.lock`, which then holds the holder's PID. A second run on the same directory
/// fails at once with one line naming that PID. The kernel releases the lock when the
/// process ends, however it ends (kill -9 included), so a stale `.lock` file never blocks.
public final class WorkDirectoryLock {
    public let path: String
    private var fd: Int32

    public init(workDir: String) throws {
        path = workDir + "/.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CausalTuneError("\(path): cannot create the work directory lock: \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = WorkDirectoryLock.readPID(fd)
            close(fd)
            fd = -1
            let who = holder.map { "process \($0)" } ?? "another process"
            throw CausalTuneError("\(workDir): work directory is in use by \(who) (lock \(path)); wait for it to finish or use another --work-dir")
        }
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Releases the lock (also done when the object goes away or the process ends).
    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }

    private static func readPID(_ fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// What a run does to its work directory besides training: clean-up at the start, pruning
/// old checkpoints, the metrics history on resume, and the best score.
public enum RunBookkeeping {
    /// Removes `<name>.tmp-<pid>` files (half-written atomic writes) left by processes that
    /// no longer exist; returns the removed paths.
    @discardableResult
    public static func removeStaleTemporaries(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for name in names {
            guard let range = name.range(of: ".tmp-", options: .backwards),
                  let pid = Int32(name[range.upperBound...]), pid > 0, pid != getpid() else { continue }
            // kill(pid, 0) fails with ESRCH when no such process exists.
            if kill(pid, 0) != 0 && errno == ESRCH {
                let path = dir + "/" + name
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }

    /// The iteration checkpoints to delete after writing the one of `step`: among those at
    /// steps ≤ `step` (later ones belong to an abandoned history and are left alone), all but
    /// the newest `keep` (0 keeps all). The checkpoint of `step` itself is never pruned.
    public static func checkpointsToPrune(_ checkpoints: [(step: Int, path: String)], step: Int,
                                          keep: Int) -> [(step: Int, path: String)] {
        guard keep > 0 else { return [] }
        let candidates = checkpoints.filter { $0.step <= step }.sorted { $0.step < $1.step }
        return Array(candidates.filter { $0.step != step }.dropLast(max(0, keep - 1)))
    }

    /// The mIoU recorded in an existing `best.h5`, so that a new run in the same directory
    /// (a resume from an older checkpoint included) never replaces it with a worse model.
    public static func recordedBest(in workDir: String) -> (miou: Double, step: Int)? {
        let path = workDir + "/best.h5"
        guard FileManager.default.fileExists(atPath: path), let reader = try? Checkpoint.Reader(path: path),
              let m = reader.extra("miou"), m.isFinite else { return nil }
        return (m, reader.metadata.step)
    }

    /// Whether `root` is where a config puts the synthetic benchmark by default
    /// (`data/synthetic`, relative to the working directory) — the only place it is generated
    /// on demand; any other missing root is a typo until `causal-tune synth` writes it.
    public static let defaultSyntheticRoot = "data/synthetic"

    public static func mayGenerateSynthetic(at root: String) -> Bool {
        let normalised = (root as NSString).standardizingPath
        return normalised == defaultSyntheticRoot
    }

    /// Generates the synthetic benchmark into `<root>.partial-<pid>` and renames it to
    /// `root` when complete: a killed generation leaves no half-written benchmark under the
    /// real name (a stale `.partial-*` folder is removed on the next try).
    public static func generateSynthetic(at root: String, benchmark: SyntheticBenchmark = SyntheticBenchmark(),
                                         train: Int = 200, val: Int = 30) throws {
        let parent = (root as NSString).deletingLastPathComponent
        let base = (root as NSString).lastPathComponent
        if !parent.isEmpty { try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent)) ?? []
        where name.hasPrefix(base + ".partial-") {
            try? FileManager.default.removeItem(atPath: (parent.isEmpty ? "" : parent + "/") + name)
        }
        let temporary = root + ".partial-\(getpid())"
        do {
            try benchmark.write(to: temporary, train: train, val: val)
            if rename(temporary, root) != 0 {
                throw CausalTuneError("\(root): cannot move the generated benchmark into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// The backbone check of `--resume`: nil when the checkpoint's recorded backbone is the
    /// configured one (or it recorded none), else the one-line reason.
    public static func backboneChange(recordedWeights: String, recordedSHA256: String,
                                      currentWeights: String, currentSHA256: String) -> String? {
        let recordedRandom = recordedWeights == "random", currentRandom = currentWeights == "random"
        if recordedWeights.isEmpty && recordedSHA256.isEmpty { return nil }
        // Compared below only as text: a garbled digest would otherwise read as "other weights".
        if !recordedSHA256.isEmpty && !SHA256.isDigest(recordedSHA256) {
            return "the recorded backbone_sha256 is not a SHA-256 digest (64 hex digits): the checkpoint is damaged"
        }
        if recordedRandom != currentRandom {
            return "the checkpoint was trained on backbone weights '\(recordedWeights)', the config uses '\(currentWeights)'"
        }
        if !recordedSHA256.isEmpty && !currentSHA256.isEmpty && recordedSHA256 != currentSHA256 {
            return "backbone weights \(currentWeights) have SHA-256 \(currentSHA256.prefix(12))…, the checkpoint was trained on \(recordedSHA256.prefix(12))… (\(recordedWeights))"
        }
        return nil
    }
}
