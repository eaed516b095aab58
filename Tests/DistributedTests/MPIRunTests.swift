import Foundation
import XCTest

/// Runs the `communicator-check` program under `mpirun -np 2` (built by `launch/test`
/// before the tests) and checks both ranks' lines.
final class MPIRunTests: XCTestCase {
    /// The package root, from this file's path (Tests/DistributedTests/<file>).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `communicator-check` beside the test bundle, else in `.build/release`.
    static func checkProgram() -> String? {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidates: [URL] = []
        var dir = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("communicator-check"))
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(packageRoot.appendingPathComponent(".build/release/communicator-check"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path
    }

    static func findMPIRun() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        return dirs.map { $0 + "/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `mpirun -np 2 --oversubscribe communicator-check ARGS`; returns (status, output).
    func runUnderMPI(_ arguments: [String], timeout: TimeInterval = 60) throws -> (Int32, String)? {
        guard let mpirun = MPIRunTests.findMPIRun() else {
            XCTFail("mpirun not found on PATH: install openmpi-bin (launch/setup does) to run the MPI tests")
            return nil
        }
        guard let program = MPIRunTests.checkProgram() else {
            XCTFail("communicator-check not built: run `swift build -c release --product communicator-check` (launch/test does)")
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = ["-np", "2", "--oversubscribe", program] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let finished = DispatchSemaphore(value: 0)
        let output = OutputBox()
        DispatchQueue.global().async {
            output.data = pipe.fileHandleForReading.readDataToEndOfFile()
            finished.signal()
        }
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            XCTFail("mpirun did not finish within \(Int(timeout)) s (a rank hangs?)")
            return nil
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output.data, as: UTF8.self))
    }

    final class OutputBox: @unchecked Sendable { var data = Data() }

    func testAllReduceAndBroadcastAgreeOnBothRanks() throws {
        guard let (status, output) = try runUnderMPI([]) else { return }
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("communicator-check rank") }
        XCTAssertEqual(lines.count, 2, output)
        for rank in 0..<2 {
            guard let line = lines.first(where: { $0.hasPrefix("communicator-check rank \(rank)/2 ") }) else {
                XCTFail("no line from rank \(rank): \(output)"); continue
            }
            // Element 36 summed: (1 + 2)·37 = 111, mean 55.5; 2 × 3e9; π from rank 0; gather [0, 1].
            XCTAssertTrue(line.contains("sum=111.0 mean=55.5 int64=6000000000 bcast=3.141592653589793 gather=[0, 1] OK"),
                          String(line))
            XCTAssertTrue(line.contains("local \(rank)/2"), String(line))
        }
    }

    func testAnErrorOnOneRankEndsTheWholeJobInsteadOfHanging() throws {
        guard let (status, output) = try runUnderMPI(["--fail-on-rank", "1"]) else { return }
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("deliberate failure on rank 1"), output)
        XCTAssertFalse(output.contains("passed the barrier"), output)
    }

    func testAPlainErrorExitOnOneRankAlsoEndsTheJob() throws {
        // exit(1) without abort (as ArgumentParser's error exit does): the exit handler
        // turns the non-zero status into MPI_Abort.
        guard let (status, output) = try runUnderMPI(["--exit-on-rank", "1"]) else { return }
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("exit(1) without abort"), output)
        XCTAssertFalse(output.contains("passed the barrier"), output)
    }
}
