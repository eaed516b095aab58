/// Atomic file replacement: write to `<name>.tmp-<pid>`, flush, `fsync`, `rename`.
///
/// `rename(2)` within one directory replaces the destination atomically, so a reader (or a
/// crash) sees either the complete old file or the complete new one, never a half-written
/// file under the real name. A failure removes the temporary file and leaves the old one.
import Foundation

public enum AtomicFile {
    /// The temporary name used while writing `path`: `<path>.tmp-<pid>`.
    public static func temporaryPath(for path: String) -> String {
        "\(path).tmp-\(getpid())"
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        let temporary = temporaryPath(for: path)
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw CausalTuneError("\(path): cannot write (check that the directory exists and is writable)")
            }
            try syncAndRename(temporary, to: path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Writes `text` (UTF-8) to `path` atomically.
    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    /// Syncs `temporary` to disk and renames it to `path`.
    public static func syncAndRename(_ temporary: String, to path: String) throws {
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            throw CausalTuneError("\(path): cannot rename the temporary file into place: \(reason)")
        }
    }
}
