import Foundation
import XCTest
import ChildProcesses

/// Runs the `communicator-check` program under `mpirun -np 2` (built by `launch/test`
/// before the tests) and checks both ranks' lines.
final class MPIRunTests: XCTestCase {
    /// Runs `mpirun -np 2 communicator-check ARGS` (environment and deadline from
    /// `ChildProcess`); returns (status, output). A missing program or mpirun fails the test.
    func runUnderMPI(_ arguments: [String], timeout: TimeInterval = 60) throws -> (Int32, String)? {
        try ChildProcess.requireBinary("communicator-check")
        let r = try ChildProcess.run(ChildProcess.binary("communicator-check"), arguments, ranks: 2, timeout: timeout)
        return (r.status, r.output)
    }

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
