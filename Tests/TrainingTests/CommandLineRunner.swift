import Foundation
import ChildProcesses

/// Runs the release `causal-tune` binary (built by `launch/test`) the way a user would: in one
/// process, or under `mpirun -np N`. The environment, the timeout and the missing-binary
/// failure come from `ChildProcess`, shared with the other test targets.
enum CommandLineRunner {
    static var binary: String { ChildProcess.binary("causal-tune") }

    /// Throws — the test fails — when the binary has not been built.
    static func requireBinary() throws { try ChildProcess.requireBinary("causal-tune") }

    /// A not-yet-started process running `causal-tune args` (under mpirun when `ranks > 1`).
    static func process(_ args: [String], ranks: Int = 1, threads: Int? = nil) throws -> Process {
        try requireBinary()
        return try ChildProcess.process(binary, args, ranks: ranks, threads: threads)
    }

    /// Runs to completion (at most `timeout` seconds); returns the exit status and
    /// stdout+stderr together.
    @discardableResult
    static func run(_ args: [String], ranks: Int = 1, threads: Int? = nil, environmentChanges: [String: String?] = [:],
                    timeout: TimeInterval = 600) throws -> (status: Int32, output: String) {
        try requireBinary()
        return try ChildProcess.run(binary, args, ranks: ranks, threads: threads, environmentChanges: environmentChanges,
                                    timeout: timeout)
    }
}
