/// HDF5 files: checkpoints, feature dumps and HDF5 weight files (reference §Files).
///
/// A thin, typed layer over the serial HDF5 C library (the `CHDF5` shim). Objects are named
/// by slash paths from the root (`params/peft/f_t/weight`, a leading `/` is optional);
/// writing a dataset or a group creates the intermediate groups. Every failure becomes a
/// `CausalTuneError` naming the file and the object path; HDF5's own error-stack printing
/// is silenced once, before the first call.
///
/// Datasets hold float32 (from/to `Tensor`) or small typed arrays (Float64, Int64, UInt64,
/// UInt8); attributes hold strings (variable-length UTF-8, read by h5py as `str`), Int64
/// and Float64 scalars and arrays, UInt64 arrays and string arrays (see `HDF5Attribute`).
///
/// Files written under their final name should go through `HDF5File.writeAtomically`:
/// temporary name, flush, close, `rename` — a crash never leaves a half-written file.
import CHDF5
import Core
import Foundation

/// An open HDF5 file. Not thread-safe (the serial HDF5 library is not); use it from one
/// thread. Closed by `close()` or when the last reference goes away.
public final class HDF5File {
    /// How a file is opened.
    public enum Mode {
        /// Open an existing file for reading.
        case readOnly
        /// Open an existing file for reading and writing.
        case readWrite
        /// Create the file, replacing any existing one.
        case truncate
    }

    /// The path the file was opened with (used in every error message).
    public let path: String
    /// The mode it was opened with.
    public let mode: Mode
    /// The HDF5 file handle (`-1` once closed).
    public private(set) var id: hid_t

    /// Opens or creates `path`.
    public init(path: String, mode: Mode) throws {
        HDF5Library.initialise()
        self.path = path
        self.mode = mode
        switch mode {
        case .truncate:
            id = H5Fcreate(path, ct_h5f_acc_trunc(), ct_h5p_default(), ct_h5p_default())
            if id < 0 {
                throw CausalTuneError("\(path): cannot create HDF5 file (check that the directory exists and is writable)")
            }
        case .readOnly, .readWrite:
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CausalTuneError("\(path): no such file")
            }
            if isDirectory.boolValue { throw CausalTuneError("\(path): is a directory, not an HDF5 file") }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw CausalTuneError("\(path): permission denied")
            }
            let flags = mode == .readOnly ? ct_h5f_acc_rdonly() : ct_h5f_acc_rdwr()
            id = H5Fopen(path, flags, ct_h5p_default())
            if id < 0 {
                let isHDF5 = H5Fis_hdf5(path)
                if isHDF5 <= 0 {
                    throw CausalTuneError("\(path): not an HDF5 file (or its header is corrupt)")
                }
                throw CausalTuneError("\(path): cannot open HDF5 file: truncated or corrupt")
            }
        }
    }

    /// Opens an existing file for reading.
    public static func open(_ path: String) throws -> HDF5File {
        try HDF5File(path: path, mode: .readOnly)
    }

    /// Creates `path`, replacing any existing file.
    public static func create(_ path: String) throws -> HDF5File {
        try HDF5File(path: path, mode: .truncate)
    }

    deinit {
        if id >= 0 { H5Fclose(id) }
    }

    /// Whether `close()` has not been called yet.
    public var isOpen: Bool { id >= 0 }

    /// Writes everything buffered to disk.
    public func flush() throws {
        try checkOpen()
        if H5Fflush(id, H5F_SCOPE_GLOBAL) < 0 { throw error("cannot flush the file") }
    }

    /// Closes the file; further calls on it throw. Closing twice is allowed.
    public func close() throws {
        guard id >= 0 else { return }
        let status = H5Fclose(id)
        id = -1
        if status < 0 { throw error("cannot close the file (disk full?)") }
    }

    // MARK: - Atomic writes

    /// Creates `path` atomically: `body` writes into `<path>.tmp-<pid>`, which is flushed,
    /// closed, synced to disk and renamed over `path`. If `body` (or any step) throws, the
    /// temporary file is deleted, any old file at `path` is left intact, and the error is
    /// rethrown.
    @discardableResult
    public static func writeAtomically<R>(to path: String, _ body: (HDF5File) throws -> R) throws -> R {
        let temporary = AtomicFile.temporaryPath(for: path)
        do {
            let file = try HDF5File(path: temporary, mode: .truncate)
            let result: R
            do {
                result = try body(file)
                try file.flush()
                try file.close()
            } catch {
                try? file.close()
                throw error
            }
            try AtomicFile.syncAndRename(temporary, to: path)
            return result
        } catch {
            unlink(temporary)
            throw error
        }
    }

    // MARK: - Helpers shared by the extensions

    /// The path without a leading `/` (the root is `""`), with repeated slashes removed.
    static func normalise(_ objectPath: String) -> String {
        objectPath.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    /// How an object path is shown in messages (`/params/peft/scale`).
    static func display(_ objectPath: String) -> String { "/" + normalise(objectPath) }

    /// The path HDF5 is given (`"."`-relative names do not work for the root).
    static func h5Name(_ objectPath: String) -> String {
        let n = normalise(objectPath)
        return n.isEmpty ? "/" : "/" + n
    }

    func checkOpen() throws {
        if id < 0 { throw CausalTuneError("\(path): the HDF5 file is already closed") }
    }

    /// An error naming this file and, when given, the object.
    func error(_ what: String, object: String? = nil) -> CausalTuneError {
        if let object { return CausalTuneError("\(path): \(HDF5File.display(object)): \(what)") }
        return CausalTuneError("\(path): \(what)")
    }

    /// Whether a link exists at `objectPath` (every intermediate group must exist too).
    public func exists(_ objectPath: String) -> Bool {
        guard id >= 0 else { return false }
        let parts = HDF5File.normalise(objectPath).split(separator: "/")
        if parts.isEmpty { return true }
        var prefix = ""
        for part in parts {
            prefix += "/" + part
            if H5Lexists(id, prefix, ct_h5p_default()) <= 0 { return false }
        }
        // The final link may dangle; check that it resolves to an object.
        return H5Oexists_by_name(id, prefix, ct_h5p_default()) > 0
    }

    /// Opens the object at `objectPath` (group, dataset or the root) and runs `body` on
    /// its handle, closing it afterwards.
    func withObject<R>(_ objectPath: String, _ body: (hid_t) throws -> R) throws -> R {
        try checkOpen()
        guard exists(objectPath) else { throw error("no such group or dataset", object: objectPath) }
        let object = H5Oopen(id, HDF5File.h5Name(objectPath), ct_h5p_default())
        if object < 0 { throw error("cannot open object (corrupt file?)", object: objectPath) }
        defer { H5Oclose(object) }
        return try body(object)
    }

    /// A link-creation property list that creates missing intermediate groups.
    func withIntermediateGroups<R>(_ body: (hid_t) throws -> R) throws -> R {
        let lcpl = H5Pcreate(ct_h5p_link_create())
        if lcpl < 0 { throw error("cannot create a property list") }
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        return try body(lcpl)
    }
}

/// One-time library set-up: open the library and silence its error printing.
///
/// HDF5's own exit handler is switched off (`H5dont_atexit`): after a failed write (disk
/// full) a file whose close failed stays half-open inside the library, and the handler would
/// try to flush and close it again at exit and crash. Every file we write is closed
/// explicitly (atomic writes close before the rename), so there is nothing for it to do.
enum HDF5Library {
    private static let ready: Bool = {
        H5dont_atexit()
        H5open()
        ct_h5_silence_errors()
        return true
    }()

    static func initialise() { _ = ready }
}
