import XCTest
import Foundation

/// Runs the release `causal-tune` binary (built by `launch/test`) the way a user would: in one
/// process, or under `mpirun -np N` with the flags this 2-core, root CI box needs. Shared by
/// every end-to-end test of TrainingTests so that the MPI environment is set in one place.
enum CommandLineRunner {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static var binary: String { root + "/.build/release/causal-tune" }

    /// Throws XCTSkip when the binary has not been built (a plain `swift test` without `launch/test`).
    static func requireBinary() throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("build the CLI first: swift build -c release --product causal-tune (launch/test does)")
        }
    }

    /// One BLAS thread per rank; OpenMPI allowed as root; no CMA (unavailable in containers).
    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        return env
    }

    /// A not-yet-started process running `causal-tune args` (under mpirun when `ranks > 1`).
    static func process(_ args: [String], ranks: Int = 1) -> Process {
        let p = Process()
        p.environment = environment
        if ranks > 1 {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["mpirun", "-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS",
                           binary] + args
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = args
        }
        return p
    }

    /// Runs to completion; returns the exit status and stdout+stderr together.
    @discardableResult
    static func run(_ args: [String], ranks: Int = 1) throws -> (status: Int32, output: String) {
        let p = process(args, ranks: ranks)
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
