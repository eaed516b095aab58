import ArgumentParser
import Backbone
import Distributed
import Foundation
import Numerics
import Training
import Visualization
#if canImport(Glibc)
import Glibc
import Core
import HDF5
#endif

/// Every HDF5 file a command opens on the user's behalf — a checkpoint (`--resume`, `--init`,
/// `--checkpoint`, `WORK_DIR/best.h5`), HDF5 backbone weights, a feature dump, the file given
/// to `inspect` — is first read by a child process: the CLI runs itself as the hidden
/// `causal-tune check-hdf5 --kind KIND PATH`, which opens the file and walks everything the
/// real reader touches (and more: every attribute name and value, variable-length strings
/// included, every group and dataset name, every shape, every numeric dataset's data).
///
/// Debian's libhdf5 1.10.8 crashes (a NULL dereference in `H5A__close`, a bad `memcpy` in
/// `H5HG_read`) or hangs on some damaged files, inside the library, before any value
/// reaches our checks. In the child that is a dead child, not a dead run:
///
/// * the child exits 0: the parent reads the file itself (our own checks then give their
///   usual one-line errors — the child reports none of them, so the messages are the same
///   with and without the check);
/// * it exits 1: its one line (e.g. it could not start the walk) is the parent's error;
/// * it dies of a signal, or outlives its deadline (30 s + 1 s per 100 MB of file, then
///   SIGKILL): one line `checkpoint X: the HDF5 library crashed reading it (signal 11) —
///   the file is damaged; …` and exit status 1.
///
/// Under `mpirun` rank 0 alone runs the checks; every rank learns the outcome (`comm.any`)
/// before any of them opens the file, and the error ends the job through `comm.run`.
/// `CAUSAL_TUNE_HDF5_PREFLIGHT=0` switches the check off;
/// `CAUSAL_TUNE_HDF5_PREFLIGHT_TIMEOUT=S` replaces the 30 s base of the deadline.
enum HDF5Preflight {
    /// What the file is to the command, which decides what the child walks and the advice.
    enum Kind: String, CaseIterable, ExpressibleByArgument {
        case checkpoint, weights, dump, any

        var noun: String {
            switch self {
            case .checkpoint: return "checkpoint"
            case .weights: return "weights file"
            case .dump: return "feature dump"
            case .any: return "HDF5 file"
            }
        }

        var advice: String {
            switch self {
            case .checkpoint: return "use an earlier checkpoint (iter_<k>.h5, last_checkpoint)"
            case .weights: return "re-download or re-convert the weights"
            case .dump: return "write it again with causal-tune features"
            case .any: return "do not use it"
            }
        }
    }

    /// One file to check.
    struct Input: Equatable {
        var path: String
        var kind: Kind
        /// Replaces the kind's advice (e.g. for WORK_DIR/best.h5).
        var advice: String? = nil
    }

    static let environmentSwitch = "CAUSAL_TUNE_HDF5_PREFLIGHT"
    static let environmentTimeout = "CAUSAL_TUNE_HDF5_PREFLIGHT_TIMEOUT"

    static var enabled: Bool { ProcessInfo.processInfo.environment[environmentSwitch] != "0" }

    /// Paths (resolved) already checked in this process (a sweep checks its weights once).
    // Unsynchronised: commands call the preflight from their main thread only.
    nonisolated(unsafe) private static var checked: Set<String> = []

    // MARK: - Parent

    /// Checks `inputs` under `comm`: rank 0 runs the children, every rank gets the verdict
    /// before any opens a file. Rank 0 throws the one-line error (`comm.run` prints it and
    /// aborts the job); the other ranks end quietly (`finish`, which the abort cuts short).
    static func check(_ groups: [Input]..., comm: Communicator) throws {
        let inputs = groups.flatMap { $0 }
        var failure: Error? = nil
        if comm.isRoot {
            do { try check(inputs) } catch { failure = error }
        }
        if comm.size > 1 && comm.any(failure != nil) && !comm.isRoot { comm.finish() }
        if let failure { throw failure }
    }

    /// Checks `inputs` in this process (single-process commands, or rank 0).
    static func check(_ groups: [Input]...) throws {
        let inputs = groups.flatMap { $0 }
        guard enabled else { return }
        for input in inputs where needsCheck(input) {
            let key = input.kind.rawValue + ":" + (input.path as NSString).standardizingPath
            if checked.contains(key) { continue }
            try run(input)
            checked.insert(key)
        }
    }

    /// Whether the real reader would hand `input` to libhdf5: a checkpoint or dump path
    /// that is an existing regular file (not a PyTorch / safetensors checkpoint), weights or
    /// an `inspect` file whose first bytes are HDF5's signature. A missing file is left to
    /// the reader's own error.
    static func needsCheck(_ input: Input) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input.path, isDirectory: &isDirectory), !isDirectory.boolValue,
              FileManager.default.isReadableFile(atPath: input.path) else { return false }
        switch input.kind {
        case .checkpoint: return !ReinCheckpoint.handles(input.path)
        case .dump: return true
        case .weights, .any: return (try? WeightFile.detectFormat(input.path)) == .hdf5
        }
    }

    /// The child's deadline in seconds for a file of `bytes`: 30 (or
    /// CAUSAL_TUNE_HDF5_PREFLIGHT_TIMEOUT) plus 1 per 100 MB.
    static func deadline(bytes: Int) -> Int {
        let base = ProcessInfo.processInfo.environment[environmentTimeout].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? 30
        return base + bytes / 100_000_000
    }

    /// This executable (the child runs it again).
    static func executable() -> String? {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
           FileManager.default.isExecutableFile(atPath: target) {
            return target
        }
        if let path = Bundle.main.executablePath, FileManager.default.isExecutableFile(atPath: path) { return path }
        let first = CommandLine.arguments[0]
        if first.contains("/") {
            let resolved = URL(fileURLWithPath: first).standardizedFileURL.path
            if FileManager.default.isExecutableFile(atPath: resolved) { return resolved }
        }
        return nil
    }

    /// Runs the child on one file and turns its end into nothing (exit 0) or an error.
    static func run(_ input: Input) throws {
        let what = "\(input.kind.noun) \(input.path)"
        guard let exe = executable() else {
            throw CausalTuneError("\(what): cannot find this program's executable to check the file in a child process (set \(environmentSwitch)=0 to skip the check)")
        }
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: input.path))?[.size] as? NSNumber)?.intValue ?? 0
        let seconds = deadline(bytes: bytes)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["check-hdf5", "--kind", input.kind.rawValue, "--deadline", String(seconds), input.path]
        // Not an MPI rank (no MPI_Init in the child), no crash report to symbolicate.
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMI_") || key.hasPrefix("PMIX_") || key.hasPrefix("PRTE_"))
        }
        env["SWIFT_BACKTRACE"] = "enable=no"
        env[environmentSwitch] = "0"
        process.environment = env
        // stderr to a file: a pipe could fill up and stall the child; the file is read once it ends.
        let errorPath = NSTemporaryDirectory() + "causal-tune-check-hdf5-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).err"
        guard FileManager.default.createFile(atPath: errorPath, contents: nil),
              let errorFile = FileHandle(forWritingAtPath: errorPath) else {
            throw CausalTuneError("\(what): cannot create a temporary file in \(NSTemporaryDirectory()) for the HDF5 check (set \(environmentSwitch)=0 to skip it)")
        }
        defer { unlink(errorPath) }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errorFile
        do {
            try process.run()
        } catch {
            try? errorFile.close()
            throw CausalTuneError("\(what): cannot start the HDF5 check (\(exe) check-hdf5: \(error.localizedDescription)); set \(environmentSwitch)=0 to skip it")
        }
        try? errorFile.close()
        let end = Date().addingTimeInterval(TimeInterval(seconds))
        var sleep: useconds_t = 1_000
        while process.isRunning && Date() < end {
            usleep(sleep)
            sleep = min(sleep * 2, 10_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw CausalTuneError("\(what): the HDF5 library did not finish reading it within \(seconds) s (stopped) — the file is damaged; \(input.advice ?? input.kind.advice)")
        }
        process.waitUntilExit()
        let status = process.terminationStatus
        if process.terminationReason == .uncaughtSignal {
            throw CausalTuneError("\(what): the HDF5 library crashed reading it (signal \(status)) — the file is damaged; \(input.advice ?? input.kind.advice)")
        }
        if status == 0 { return }
        let message = (try? String(contentsOfFile: errorPath, encoding: .utf8))?
            .split(separator: "\n").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        if status == 1 && !message.isEmpty { throw CausalTuneError(message) }
        throw CausalTuneError("\(what): the HDF5 check failed (exit status \(status))\(message.isEmpty ? "" : ": " + message); set \(environmentSwitch)=0 to skip it")
    }

    // MARK: - Child

    /// The walk the child does: first the real reader's own calls for `kind` (by-name
    /// attribute reads, the datasets it loads), then every object of the file: attribute
    /// names and values, children, shapes and the data of every numeric dataset. Errors our
    /// code throws are ignored here (the parent's reader reports them); only a crash or a
    /// hang of the library matters.
    static func walk(_ path: String, kind: Kind) {
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        switch kind {
        case .checkpoint:
            if let reader = try? Checkpoint.Reader(path: path) {
                _ = try? reader.requireResumable()
                _ = try? reader.parameterNames()
                for name in CheckpointLayout.Attribute.evaluationScalars { _ = reader.extra(name) }
                try? reader.file.close()
            }
        case .dump:
            if let dump = try? FeatureDump(path: path) {
                for layer in dump.layers {
                    for dataset in FeatureDumpFormat.LayerDataset.allCases { _ = dump.has(layer: layer, dataset) }
                }
                _ = dump.has(FeatureDumpFormat.image)
                _ = dump.has(FeatureDumpFormat.mask)
            }
        case .weights:
            // HDF5Weights.read's sequence, one tensor at a time: the /backbone test, the root
            // attributes (read for `inspect`), then every dataset's info and data.
            if let file = try? HDF5File.open(path) {
                let root = file.isGroup(CheckpointLayout.backbone) ? CheckpointLayout.backbone : "/"
                for name in (try? file.attributeNames(of: "/")) ?? [] { _ = try? file.attribute(name, of: "/") }
                for dataset in (try? file.datasetPaths(under: root)) ?? [] {
                    if let info = try? file.datasetInfo(dataset), info.elementType != .string { readData(file, dataset, info, bytes: bytes) }
                }
                try? file.close()
            }
        case .any:
            _ = try? Inspection.describe(path)
        }
        guard let file = try? HDF5File.open(path) else { return }
        defer { try? file.close() }
        var budget = 100_000   // objects: hard links may form cycles
        walkObject(file, "/", bytes: bytes, depth: 0, budget: &budget)
    }

    /// One object: its attributes, then (a group) its children, (a dataset) shape and data.
    private static func walkObject(_ file: HDF5File, _ objectPath: String, bytes: Int, depth: Int, budget: inout Int) {
        budget -= 1
        guard budget >= 0 else { return }
        for name in (try? file.attributeNames(of: objectPath)) ?? [] {
            _ = file.hasAttribute(name, on: objectPath)
            _ = try? file.attribute(name, of: objectPath)
        }
        guard depth < 64 else { return }
        if file.isGroup(objectPath) {
            for child in (try? file.children(of: objectPath)) ?? [] {
                let full = objectPath == "/" ? child.name : objectPath + "/" + child.name
                walkObject(file, full, bytes: bytes, depth: depth + 1, budget: &budget)
            }
        } else if file.isDataset(objectPath), let info = try? file.datasetInfo(objectPath) {
            readData(file, objectPath, info, bytes: bytes)
        }
    }

    /// A numeric dataset's data as the readers read it (float32), unless its shape is far
    /// beyond what the file can hold (the readers refuse such a shape before reading).
    private static func readData(_ file: HDF5File, _ objectPath: String, _ info: HDF5DatasetInfo, bytes: Int) {
        switch info.elementType {
        case .float, .signedInteger, .unsignedInteger:
            if let count = Tensor.checkedElementCount(info.shape), count <= max(16 * bytes, 1 << 24) {
                _ = try? file.readTensor(objectPath)
            }
        default:
            break
        }
    }
}

/// The inputs of the usual kinds: `check(.checkpoint(resume), .weights(of: cfg), comm: comm)`.
extension Array where Element == HDF5Preflight.Input {
    static func checkpoint(_ path: String?) -> [Element] { path.map { [Element(path: $0, kind: .checkpoint)] } ?? [] }

    /// `model.backbone.weights` of a config (nothing for `random`).
    static func weights(of config: ExperimentConfig) -> [Element] {
        let b = config.model.backbone
        return b.randomWeights ? [] : [Element(path: b.weights, kind: .weights)]
    }

    /// `WORK_DIR/best.h5`, which a training run reads to keep the best model.
    static func best(of config: ExperimentConfig) -> [Element] {
        [Element(path: config.output.workDir + "/best.h5", kind: .checkpoint,
                 advice: "move it out of the work directory (a new best.h5 is written at the next better evaluation)")]
    }
}

/// `causal-tune check-hdf5 --kind KIND PATH` (hidden): the child of `HDF5Preflight`. Exits 0
/// once it has walked the file (whatever our own checks think of it), or dies trying.
struct CheckHDF5Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-hdf5",
        abstract: "Internal: read an HDF5 file in a child process (HDF5Preflight).",
        shouldDisplay: false
    )

    @Option(help: "checkpoint, weights, dump or any.") var kind: HDF5Preflight.Kind
    @Option(help: "Seconds after which the check ends itself (the parent kills it at that time too).")
    var deadline: Int = 0
    @Argument(help: "The HDF5 file.") var path: String

    func run() throws {
        #if os(Linux)
        // No core file of a crash.
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
        #endif
        // A hang ends itself a little after the parent's deadline, even if the parent is gone.
        if deadline > 0 { alarm(UInt32(min(deadline + 5, Int(UInt32.max)))) }
        HDF5Preflight.walk(path, kind: kind)
    }
}
