import Foundation

/// The programs the test suite starts — the release `causal-tune` and `communicator-check`
/// that `launch/test` builds, alone or under `mpirun` — with one environment and one timeout
/// policy for every test target.
///
/// * A missing binary or `mpirun` is an error (the test fails; it is never skipped).
/// * Every child has a deadline; past it the child (mpirun and its ranks) is killed and
///   the test fails with the output so far.
/// * MPI on a 2-core container as root: `OMPI_ALLOW_RUN_AS_ROOT*`, `--oversubscribe`, no
///   CMA single-copy, no binding; one BLAS thread per rank unless a test asks for more
///   (`CAUSAL_TUNE_NUM_THREADS`).
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ message: String) { description = message }
    }

    /// The package root (this file is Tests/ChildProcesses/ChildProcess.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// `.build/release/<name>`.
    public static func binary(_ name: String) -> String { packageRoot + "/.build/release/" + name }

    /// Throws (the test fails) unless the release binary `name` exists.
    public static func requireBinary(_ name: String = "causal-tune") throws {
        guard FileManager.default.isExecutableFile(atPath: binary(name)) else {
            throw Failure("\(binary(name)) is missing: build it with `swift build -c release --product \(name)` (./launch/test does)")
        }
    }

    /// The program `name` on PATH (or in /usr/bin, /usr/local/bin); `package` says which
    /// Debian package brings it.
    public static func tool(_ name: String, package: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        guard let found = dirs.map({ $0 + "/" + name }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure("\(name) not found on PATH: install \(package) (launch/setup does)")
        }
        return found
    }

    /// `mpirun`.
    public static func mpirun() throws -> String { try tool("mpirun", package: "openmpi-bin") }

    /// The environment of every child: one BLAS / worker thread unless `threads` says
    /// otherwise, and what Open MPI needs as root in a container; then `changes` (a nil value
    /// removes the variable).
    public static func environment(threads: Int? = nil, changes: [String: String?] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        if let threads { env["CAUSAL_TUNE_NUM_THREADS"] = "\(threads)" } else { env.removeValue(forKey: "CAUSAL_TUNE_NUM_THREADS") }
        for (key, value) in changes { env[key] = value }
        return env
    }

    /// A not-yet-started process running `program args`, under `mpirun -np ranks` when
    /// `ranks > 1`.
    public static func process(_ program: String, _ args: [String], ranks: Int = 1, threads: Int? = nil,
                               environmentChanges: [String: String?] = [:]) throws -> Process {
        let p = Process()
        p.environment = environment(threads: threads, changes: environmentChanges)
        if ranks > 1 {
            p.executableURL = URL(fileURLWithPath: try mpirun())
            var forwarded = ["-x", "OPENBLAS_NUM_THREADS"]
            if threads != nil { forwarded += ["-x", "CAUSAL_TUNE_NUM_THREADS"] }
            p.arguments = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"] + forwarded + [program] + args
        } else {
            p.executableURL = URL(fileURLWithPath: program)
            p.arguments = args
        }
        return p
    }

    // @unchecked: written by the pipe handler, read only after the process has exited.
    final class OutputBox: @unchecked Sendable { var data = Data() }

    /// Runs to completion within `timeout` seconds; returns the exit status and stdout +
    /// stderr together (stdout alone with `includeStandardError: false`). Past the deadline
    /// the child is killed and this throws.
    public static func run(_ program: String, _ args: [String], ranks: Int = 1, threads: Int? = nil,
                           environmentChanges: [String: String?] = [:], timeout: TimeInterval = 600,
                           includeStandardError: Bool = true) throws -> (status: Int32, output: String) {
        let p = try process(program, args, ranks: ranks, threads: threads, environmentChanges: environmentChanges)
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = includeStandardError ? pipe : FileHandle.nullDevice
        try p.run()
        let done = DispatchSemaphore(value: 0)
        let output = OutputBox()
        DispatchQueue.global().async {
            output.data = pipe.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(p.processIdentifier, SIGTERM)   // mpirun passes it on to its ranks
            usleep(2_000_000)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            _ = done.wait(timeout: .now() + 10)
            throw Failure("\(([program] + args).joined(separator: " ")) did not finish within \(Int(timeout)) s; output so far:\n"
                          + String(decoding: output.data, as: UTF8.self))
        }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: output.data, as: UTF8.self))
    }
}
